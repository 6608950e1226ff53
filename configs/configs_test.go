package configs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

// docs holds every YAML document and JSON file under configs/, by path.
func docs(t *testing.T) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml":
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			dec := yaml.NewDecoder(f)
			for {
				var doc any
				err := dec.Decode(&doc)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Errorf("%s: %v", path, err)
					break
				}
				if doc != nil {
					out[path] = append(out[path], doc)
				}
			}
			if len(out[path]) == 0 {
				t.Errorf("%s holds no YAML document", path)
			}
		case ".json":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var doc any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			out[path] = []any{doc}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// at follows a path of map keys and list indexes through a decoded document.
func at(doc any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := doc.(map[string]any)
			if !ok {
				return nil
			}
			doc = m[k]
		case int:
			l, ok := doc.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			doc = l[k]
		}
	}
	return doc
}

// kind returns the documents of a Kubernetes kind in a file.
func kind(t *testing.T, all map[string][]any, path, k string) []any {
	t.Helper()
	var found []any
	for _, d := range all[path] {
		if at(d, "kind") == k {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		t.Fatalf("%s has no %s", path, k)
	}
	return found
}

// components are the configurations of every component and command.
var components = []reflect.Type{
	reflect.TypeFor[writebehind.WriterConfig](), reflect.TypeFor[writebehind.ReaderConfig](),
	reflect.TypeFor[startup.FlusherConfig](), reflect.TypeFor[startup.Settings](),
}

// variables returns the WB_ variables of every component's configuration.
func variables() map[string]bool {
	vars := map[string]bool{}
	for _, rt := range components {
		for _, f := range reflect.VisibleFields(rt) {
			if key := f.Tag.Get("envconfig"); key != "" {
				vars["WB_"+key] = true
			}
		}
	}
	return vars
}

// TestVariablesAgree: a variable read by several components has one type,
// default and meaning.
func TestVariablesAgree(t *testing.T) {
	t.Parallel()
	first := map[string]reflect.StructField{}
	for _, rt := range components {
		for _, f := range reflect.VisibleFields(rt) {
			key := f.Tag.Get("envconfig")
			if key == "" {
				continue
			}
			if g, ok := first[key]; ok && (g.Type != f.Type || g.Tag != f.Tag) {
				t.Errorf("WB_%s: %s %s in one component, %s %s in %s", key, g.Type, g.Tag, f.Type, f.Tag, rt)
			}
			first[key] = f
		}
	}
}

func TestFilesParse(t *testing.T) {
	t.Parallel()
	all := docs(t)
	for _, want := range []string{
		"docker-compose.yml", "k8s/config.yaml", "k8s/flusher.yaml", "k8s/migrate-job.yaml", "k8s/keda.yaml",
		"k8s/cluster/secret.yaml", "k8s/cluster/keda.yaml",
		"prometheus/alerts.yml", "grafana/writebehind.json",
	} {
		if _, ok := all[want]; !ok {
			t.Errorf("%s is missing or empty", want)
		}
	}
}

func TestEnvironmentVariablesExist(t *testing.T) {
	t.Parallel()
	vars := variables()
	f, err := os.Open("example.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, _, ok := strings.Cut(line, "=")
		if !ok || !vars[key] {
			t.Errorf("example.env: %q is not a configuration variable", line)
		}
		seen++
	}
	if seen != len(vars) {
		t.Errorf("example.env sets %d variables, the configuration has %d", seen, len(vars))
	}

	all := docs(t)
	for k := range at(kind(t, all, "k8s/config.yaml", "ConfigMap")[0], "data").(map[string]any) {
		if !vars[k] {
			t.Errorf("k8s/config.yaml: ConfigMap key %s is not a configuration variable", k)
		}
	}
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	all := docs(t)
	dep := kind(t, all, "k8s/flusher.yaml", "Deployment")[0]
	spec := at(dep, "spec", "template", "spec")
	// WB_SHUTDOWN_TIMEOUT defaults to 30s; the kubelet must wait longer.
	if g, _ := at(spec, "terminationGracePeriodSeconds").(int); g <= 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want more than 30", at(spec, "terminationGracePeriodSeconds"))
	}
	c := at(spec, "containers", 0)
	if p := at(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("liveness probe on %v, want /healthz", p)
	}
	if p := at(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness probe on %v, want /readyz", p)
	}
	if at(c, "resources", "requests", "cpu") == nil || at(c, "resources", "requests", "memory") == nil {
		t.Error("the flusher has no resource requests")
	}
	// The memory limit holds what the flusher takes with the configured
	// budget, and the garbage collector is told of it.
	cm := at(kind(t, all, "k8s/config.yaml", "ConfigMap")[0], "data")
	inflight := int64(flusher.DefaultMaxInflightBytes)
	if v, ok := at(cm, "WB_MAX_INFLIGHT_BYTES").(string); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("WB_MAX_INFLIGHT_BYTES %q", v)
		}
		inflight = n
	}
	limit, err := resource.ParseQuantity(fmt.Sprint(at(c, "resources", "limits", "memory")))
	if err != nil {
		t.Fatal(err)
	}
	if bound := flusher.MemoryBound(inflight); limit.Value() < bound {
		t.Errorf("memory limit %s is below the %d MiB a flusher with WB_MAX_INFLIGHT_BYTES=%d may take", limit.String(), bound>>20, inflight)
	}
	var gomemlimit string
	for _, env := range at(c, "env").([]any) {
		if at(env, "name") == "GOMEMLIMIT" {
			gomemlimit, _ = at(env, "value").(string)
		}
	}
	if soft, err := resource.ParseQuantity(strings.TrimSuffix(gomemlimit, "B")); err != nil || soft.Cmp(limit) >= 0 {
		t.Errorf("GOMEMLIMIT %q, want one below the memory limit %s", gomemlimit, limit.String())
	}
	if at(c, "ports", 0, "containerPort") != 9090 {
		t.Errorf("metrics port %v, want 9090 (WB_METRICS_ADDR)", at(c, "ports", 0, "containerPort"))
	}
	kind(t, all, "k8s/flusher.yaml", "PodDisruptionBudget")
	if a := at(kind(t, all, "k8s/migrate-job.yaml", "Job")[0], "spec", "template", "spec", "containers", 0, "args", 0); a != "migrate" {
		t.Errorf("migrate job runs %v", a)
	}

	// The KEDA triggers watch exactly the streams of the configured
	// namespace and partitions, on the Redis the flushers use.
	secret := kind(t, all, "k8s/config.yaml", "Secret")[0]
	checkTriggers(t, all, "k8s/keda.yaml", "redis-streams", cm, secret)
	checkTriggers(t, all, "k8s/cluster/keda.yaml", "redis-cluster-streams", cm, kind(t, all, "k8s/cluster/secret.yaml", "Secret")[0])
}

// kedaRedisStreamsKeys are the trigger metadata keys KEDA's Redis Streams
// scaler reads (kedacore/keda v2.21.0, pkg/scalers/redis_streams_scaler.go
// and the redisConnectionInfo of redis_scaler.go), for redis-streams,
// redis-cluster-streams and redis-sentinel-streams alike; the scaler ignores
// any other key, so a misspelt one would silently fall back to a default.
var kedaRedisStreamsKeys = map[string]bool{
	"pendingEntriesCount": true, "streamLength": true, "lagCount": true, "stream": true, "consumerGroup": true,
	"databaseIndex": true, "activationLagCount": true, "enableTLS": true, "unsafeSsl": true,
	"address": true, "addresses": true, "host": true, "hosts": true, "port": true, "ports": true,
	"username": true, "password": true, "sentinelUsername": true, "sentinelPassword": true, "sentinelMaster": true,
}

// checkTriggers checks the ScaledObject of a KEDA file: one trigger of type
// typ per partition stream of the ConfigMap's namespace, each on the
// flushers' group, scaling on pending entries, with only keys the scaler
// reads, pointed at the Redis of the Secret's WB_REDIS_URL, and
// authenticated with the Secret's Redis password.
func checkTriggers(t *testing.T, all map[string][]any, file, typ string, cm, secret any) {
	t.Helper()
	n, err := strconv.Atoi(at(cm, "WB_PARTITIONS").(string))
	if err != nil {
		t.Fatal(err)
	}
	keys := keyspace.NewKeys(at(cm, "WB_NAMESPACE").(string))
	var want, got []string
	for p := range n {
		want = append(want, keys.Stream(p))
	}
	target, err := startup.ParseRedisURL(at(secret, "stringData", "WB_REDIS_URL").(string))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var addrs []string
	cluster := false
	switch c := target.Client(0).(type) {
	case *redis.ClusterClient:
		addrs, cluster = c.Options().Addrs, true
	case *redis.Client:
		addrs = []string{c.Options().Addr}
	default:
		t.Fatalf("%s: WB_REDIS_URL names a %T", file, c)
	}
	if strings.HasPrefix(typ, "redis-cluster") != cluster {
		t.Errorf("%s: %s triggers for WB_REDIS_URL %s", file, typ, at(secret, "stringData", "WB_REDIS_URL"))
	}
	auths := map[string]any{}
	for _, a := range kind(t, all, file, "TriggerAuthentication") {
		auths[at(a, "metadata", "name").(string)] = a
	}
	so := kind(t, all, file, "ScaledObject")[0]
	for _, tr := range at(so, "spec", "triggers").([]any) {
		md, _ := at(tr, "metadata").(map[string]any)
		if at(tr, "type") != typ || md["consumerGroup"] != at(cm, "WB_GROUP") || md["pendingEntriesCount"] == nil {
			t.Errorf("%s: KEDA trigger %v", file, tr)
		}
		for k := range md {
			if !kedaRedisStreamsKeys[k] {
				t.Errorf("%s: KEDA's Redis Streams scaler reads no %q", file, k)
			}
		}
		address, _ := md["address"].(string)
		if a, ok := md["addresses"].(string); ok {
			address = a
		}
		if !slices.Equal(strings.Split(address, ","), addrs) {
			t.Errorf("%s: trigger on %q, WB_REDIS_URL on %q", file, address, addrs)
		}
		auth := auths[fmt.Sprint(at(tr, "authenticationRef", "name"))]
		if at(auth, "spec", "secretTargetRef", 0, "parameter") != "password" ||
			at(auth, "spec", "secretTargetRef", 0, "name") != at(secret, "metadata", "name") ||
			at(secret, "stringData", at(auth, "spec", "secretTargetRef", 0, "key")) == nil {
			t.Errorf("%s: trigger authentication %v does not take the password of the Secret", file, auth)
		}
		got = append(got, md["stream"].(string))
	}
	if !slices.Equal(want, got) {
		t.Errorf("%s: KEDA streams %q, want %q", file, got, want)
	}
}

func TestCompose(t *testing.T) {
	t.Parallel()
	compose := docs(t)["docker-compose.yml"][0]
	services := at(compose, "services").(map[string]any)
	cmd := func(s string) string {
		var parts []string
		for _, p := range at(services, s, "command").([]any) {
			parts = append(parts, p.(string))
		}
		return strings.Join(parts, " ")
	}
	if !strings.Contains(cmd("redis"), "--appendonly yes") || !strings.Contains(cmd("redis"), "--auto-aof-rewrite-min-size 1gb") {
		t.Errorf("redis runs %q, want AOF on, rewritten past 1gb", cmd("redis"))
	}
	if cmd("migrate") != "migrate" || cmd("flusher-1") != "run" || cmd("flusher-2") != "run" {
		t.Errorf("commands: migrate %q, flushers %q and %q", cmd("migrate"), cmd("flusher-1"), cmd("flusher-2"))
	}
	if at(services, "postgres") == nil {
		t.Error("no postgres service")
	}

	// Everything a service names is in the file: the services it depends
	// on (in its profiles, or in none: a service of no profile starts by
	// default and cannot wait for one that does not), its networks and
	// volumes, and its image, built here or pulled like another service's.
	profiles := func(s string) []any { p, _ := at(services, s, "profiles").([]any); return p }
	images := map[string]bool{}
	for name := range services {
		if img, ok := at(services, name, "image").(string); ok && at(services, name, "build") == nil {
			images[img] = true
		}
	}
	for name := range services {
		deps, _ := at(services, name, "depends_on").(map[string]any)
		for dep := range deps {
			if services[dep] == nil {
				t.Errorf("%s depends on %s, which is no service", name, dep)
			} else if p := profiles(dep); len(p) > 0 && !slices.Equal(profiles(name), p) {
				t.Errorf("%s (profiles %v) depends on %s, of profiles %v", name, profiles(name), dep, p)
			}
		}
		nets := at(services, name, "networks")
		if m, ok := nets.(map[string]any); ok {
			nets = slices.Collect(maps.Keys(m))
		}
		for _, n := range asList(nets) {
			if n != "default" && !hasKey(at(compose, "networks"), n.(string)) {
				t.Errorf("%s is on network %v, which is not defined", name, n)
			}
		}
		for _, v := range asList(at(services, name, "volumes")) {
			if vol, _, _ := strings.Cut(v.(string), ":"); !hasKey(at(compose, "volumes"), vol) {
				t.Errorf("%s mounts volume %s, which is not defined", name, vol)
			}
		}
		img, _ := at(services, name, "image").(string)
		if img == "" || (at(services, name, "build") == nil && !images[img]) {
			t.Errorf("%s has image %q", name, img)
		}
		if at(services, name, "build") != nil {
			images[img] = true
		}
	}
	for name := range services {
		if img, _ := at(services, name, "image").(string); !images[img] {
			t.Errorf("%s runs image %s, which nothing here builds", name, img)
		}
	}

	// The profile "cluster": six nodes with AOF, made into three primaries
	// with a replica each by a one-shot container, and flushers and a writer
	// seeded with nodes of that cluster.
	nodes := map[string]bool{}
	for name := range services {
		if strings.HasPrefix(name, "redis-cluster-") && name != "redis-cluster-init" {
			if !slices.Equal(profiles(name), []any{"cluster"}) || !strings.Contains(cmd(name), "--cluster-enabled yes") ||
				!strings.Contains(cmd(name), "--appendonly yes") || !strings.Contains(cmd(name), "--auto-aof-rewrite-min-size 1gb") {
				t.Errorf("%s: profiles %v, runs %q", name, profiles(name), cmd(name))
			}
			ip, _ := at(services, name, "networks", "cluster", "ipv4_address").(string)
			nodes[ip+":6379"] = true
			if at(services, "redis-cluster-init", "depends_on", name, "condition") != "service_healthy" {
				t.Errorf("redis-cluster-init does not wait for %s", name)
			}
		}
	}
	if len(nodes) != 6 {
		t.Fatalf("cluster nodes %v, want 6 with addresses of their own", nodes)
	}
	create := strings.Fields(cmd("redis-cluster-init"))
	i := slices.Index(create, "create")
	if i < 0 || !strings.Contains(cmd("redis-cluster-init"), "--cluster-replicas 1 --cluster-yes") {
		t.Fatalf("redis-cluster-init runs %q", cmd("redis-cluster-init"))
	}
	created := map[string]bool{}
	for _, a := range create[i+1:] {
		if strings.HasPrefix(a, "--") {
			break
		}
		created[a] = true
	}
	if !maps.Equal(created, nodes) {
		t.Errorf("redis-cluster-init creates a cluster of %v, the nodes are %v", created, nodes)
	}
	var writer bool
	for name := range services {
		url, _ := at(services, name, "environment", "WB_REDIS_URL").(string)
		if !strings.HasPrefix(url, "redis+cluster://") {
			continue
		}
		target, err := startup.ParseRedisURL(url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, ok := target.Client(0).(*redis.ClusterClient)
		if !ok {
			t.Fatalf("%s: WB_REDIS_URL %s", name, url)
		}
		for _, a := range c.Options().Addrs {
			if !nodes[a] {
				t.Errorf("%s seeds its cluster client with %s, which is no node", name, a)
			}
		}
		if at(services, name, "depends_on", "redis-cluster-init", "condition") != "service_completed_successfully" {
			t.Errorf("%s does not wait for the cluster", name)
		}
		switch {
		case strings.HasPrefix(name, "flusher-cluster-"):
			if cmd(name) != "run" {
				t.Errorf("%s runs %q", name, cmd(name))
			}
		case name == "writer-cluster":
			writer = strings.HasPrefix(cmd(name), "load ") && slices.Equal(asList(at(services, name, "entrypoint")), []any{"/usr/local/bin/writer"})
		}
	}
	if !writer || services["flusher-cluster-1"] == nil || services["flusher-cluster-2"] == nil {
		t.Error("the profile cluster lacks a writer loading the cluster or two flushers flushing it")
	}
}

// hasKey reports whether a decoded YAML mapping has the key, even with no
// value, as a named volume of compose often has.
func hasKey(m any, key string) bool {
	mm, _ := m.(map[string]any)
	_, ok := mm[key]
	return ok
}

// asList is a decoded YAML list, or nil.
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// registered returns every sample name the code can export.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	reg := prometheus.NewRegistry()
	f := metrics.NewFlusher(reg)
	f.RowsWritten.WithLabelValues("t")
	f.CommitErrors.WithLabelValues("transient")
	if _, err := metrics.NewReadPath(reg); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(metrics.NewPartitions(queue.New(rdb, ns, 1), "g", 5*time.Second))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

var metricName = regexp.MustCompile(`writebehind_[a-z0-9_]+`)

func TestMetricNamesExist(t *testing.T) {
	t.Parallel()
	names := registered(t)
	if !names["writebehind_lag"] || !names["writebehind_batch_duration_seconds_bucket"] {
		t.Fatalf("registered metrics are incomplete: %v", names)
	}
	for _, path := range []string{"prometheus/alerts.yml", "grafana/writebehind.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		used := metricName.FindAllString(string(b), -1)
		if len(used) < 4 {
			t.Errorf("%s uses only %v", path, used)
		}
		for _, n := range used {
			if !names[n] {
				t.Errorf("%s uses %s, which no code registers", path, n)
			}
		}
	}

	// The alerts cover what the runbook covers.
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"writebehind_lag", "writebehind_oldest_pending_age_seconds", "writebehind_dead_letter_length", `up{job="writebehind-flusher"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no alert on %s", want)
		}
	}
}

// TestImageUserIsNumeric: the kubelet refuses runAsNonRoot for an image whose
// USER is a name (it cannot tell the uid without the image's passwd), so the
// shipped pods could never start.
func TestImageUserIsNumeric(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var user string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.EqualFold(f[0], "USER") {
			user = f[1]
		}
	}
	uid, gid, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Fatalf("Dockerfile USER %q: want a numeric non-root uid", user)
	}
	if gid != "" {
		if _, err := strconv.Atoi(gid); err != nil {
			t.Errorf("Dockerfile USER %q: want a numeric gid", user)
		}
	}
	all := docs(t)
	for _, f := range []struct{ file, kind string }{{"k8s/flusher.yaml", "Deployment"}, {"k8s/migrate-job.yaml", "Job"}} {
		spec := at(kind(t, all, f.file, f.kind)[0], "spec", "template", "spec")
		if at(spec, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: runAsNonRoot is not set", f.file)
		}
	}
}
