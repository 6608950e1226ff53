package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// The shipped files checked by the code of the systems that read them: the
// upstream Kubernetes and KEDA types with strict decoding (an unknown or
// misplaced field is an error, as kubectl's server-side validation makes
// it), Prometheus's own rule file loader and PromQL parser.

// promql is Prometheus's PromQL parser with its default functions.
var promql = parser.NewParser(parser.Options{})

// manifestTypes maps apiVersion and kind to the upstream Go type.
var manifestTypes = map[string]func() any{
	"apps/v1 Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1 Job":                           func() any { return &batchv1.Job{} },
	"policy/v1 PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"v1 Service":                             func() any { return &corev1.Service{} },
	"v1 ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1 Secret":                              func() any { return &corev1.Secret{} },
	"keda.sh/v1alpha1 ScaledObject":          func() any { return &kedav1alpha1.ScaledObject{} },
	"keda.sh/v1alpha1 TriggerAuthentication": func() any { return &kedav1alpha1.TriggerAuthentication{} },
}

func TestManifestsDecodeStrictlyIntoUpstreamTypes(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("k8s/*.yaml")
	clusterFiles, _ := filepath.Glob("k8s/cluster/*.yaml")
	files = append(files, clusterFiles...)
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---")) {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			if head.Kind == "" {
				continue // comments only
			}
			key := head.APIVersion + " " + head.Kind
			mk, ok := manifestTypes[key]
			if !ok {
				t.Errorf("%s #%d: %s has no upstream type in this test", f, i, key)
				continue
			}
			if err := yaml.UnmarshalStrict(doc, mk()); err != nil {
				t.Errorf("%s #%d (%s): %v", f, i, key, err)
			}
			seen[key] = true
		}
	}
	for key := range manifestTypes {
		if !seen[key] {
			t.Errorf("no manifest of %s", key)
		}
	}

	// The pods run as non-root; the image's user is numeric, so the
	// kubelet can check it (TestImageUserIsNumeric).
	b, err := os.ReadFile("k8s/flusher.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(bytes.Split(b, []byte("\n---"))[0], &dep); err != nil {
		t.Fatal(err)
	}
	if sc := dep.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the flusher pods do not run as non-root")
	}
}

// queries returns every PromQL expression of the alert rules and the
// dashboard, by where it stands.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("prometheus/alerts.yml: %v", err)
	}
	if groups != nil {
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				out["alert "+r.Alert] = r.Expr
			}
		}
	}
	b, err := os.ReadFile("grafana/writebehind.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "expr" {
					out[path] = s
				}
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("dashboard", dash)
	return out
}

// TestQueriesParseAndUseRegisteredMetrics: every alert and panel query
// parses as PromQL, and every metric it selects is one the code registers.
func TestQueriesParseAndUseRegisteredMetrics(t *testing.T) {
	t.Parallel()
	names := registered(t)
	qs := queries(t)
	if len(qs) < 10 {
		t.Fatalf("only %d queries found", len(qs))
	}
	// Grafana's own variables are not PromQL; give them what Grafana would.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	for where, q := range qs {
		expr, err := promql.ParseExpr(grafana.Replace(q))
		if err != nil {
			t.Errorf("%s: %q: %v", where, q, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "writebehind_") && !names[vs.Name] {
				t.Errorf("%s selects %s, which no code registers", where, vs.Name)
			}
			return nil
		})
	}
}
