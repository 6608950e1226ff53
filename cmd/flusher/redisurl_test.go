package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// TestCommandsOnClusterAndSentinel: with WB_REDIS_URL naming a Redis
// Cluster or a primary under Sentinel, `writer put` and `writer del`
// write, `flusher migrate` and `drain` flush everything, `writer get` reads
// it back, and `flusher inspect` reads the streams.
func TestCommandsOnClusterAndSentinel(t *testing.T) {
	t.Parallel()
	targets := map[string]func(t *testing.T) string{
		"cluster": func(t *testing.T) string {
			c := testenv.StartCluster(t)
			var seeds []string
			for _, n := range c.Nodes[:3] {
				seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", n.Port))
			}
			return "redis+cluster://" + strings.Join(seeds, ",")
		},
		"sentinel": func(t *testing.T) string {
			s := testenv.StartSentinel(t, testenv.StartRedis(t))
			return fmt.Sprintf("redis+sentinel://127.0.0.1:%d/%s", s.Port, testenv.SentinelMaster)
		},
	}
	for name, start := range targets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, schema := testenv.Postgres(t)
			env := []string{"WB_REDIS_URL=" + start(t), "WB_POSTGRES_URL=" + testenv.PostgresURL(),
				"WB_NAMESPACE=" + testenv.Name("t"), "WB_ENTITIES=user=" + schema + ".users", "WB_PARTITIONS=8", "WB_LOG_LEVEL=warn"}
			flusher, writer := testenv.Commands(t)
			must := func(bin string, args ...string) string {
				t.Helper()
				code, out, errOut := runBin(t, bin, env, args...)
				if code != 0 {
					t.Fatalf("%v exited %d: %s", args, code, errOut)
				}
				return out
			}
			must(flusher, "migrate")
			for i := range 20 {
				must(writer, "put", "user", fmt.Sprint(i), fmt.Sprintf(`{"n":%d}`, i))
			}
			must(writer, "del", "user", "3")
			var summary struct{ Ops, Rows int64 }
			if err := json.Unmarshal([]byte(must(flusher, "drain")), &summary); err != nil || summary.Ops != 21 {
				t.Fatalf("drain summary %+v (%v), want 21 ops", summary, err)
			}
			if got := must(writer, "get", "user", "7"); !strings.Contains(got, `"n":7`) {
				t.Fatalf("writer get user 7: %q", got)
			}
			var n int
			if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+schema+`.users WHERE NOT deleted`).Scan(&n); err != nil || n != 19 {
				t.Fatalf("%d rows (%v), want 19", n, err)
			}
			var report struct {
				Partitions []struct {
					Partition int
					Node      string
				}
			}
			if err := json.Unmarshal([]byte(must(flusher, "inspect", "--json")), &report); err != nil || len(report.Partitions) != 8 {
				t.Fatalf("inspect --json: %+v (%v), want 8 partitions", report, err)
			}
			for _, p := range report.Partitions {
				if (p.Node != "") != (name == "cluster") {
					t.Fatalf("partition %d: node %q on a %s", p.Partition, p.Node, name)
				}
			}
		})
	}
}
