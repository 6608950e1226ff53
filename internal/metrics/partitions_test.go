package metrics_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/testenv"
)

func TestPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 2)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	// Three ops on partition 1; one of them read and not acknowledged.
	var ops []op.Op
	for i := 0; len(ops) < 3; i++ {
		id := string(rune('a' + i))
		if q.Partition("user", id) == 1 {
			ops = append(ops, op.Op{Kind: op.Delete, Entity: "user", ID: id})
		}
	}
	if _, errs := q.Write(ctx, ops, time.Now()); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, err := q.Read(ctx, 1, "g", "c", ">", queue.Limit{Count: 1, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewPartitions(q, "g", time.Second))
	want := `
# HELP writebehind_lag Entries of the partition the group has not read yet.
# TYPE writebehind_lag gauge
writebehind_lag{partition="0"} 0
writebehind_lag{partition="1"} 2
# HELP writebehind_pending Entries of the partition read and not yet acknowledged.
# TYPE writebehind_pending gauge
writebehind_pending{partition="0"} 0
writebehind_pending{partition="1"} 1
# HELP writebehind_stream_length Entries in the partition stream.
# TYPE writebehind_stream_length gauge
writebehind_stream_length{partition="0"} 0
writebehind_stream_length{partition="1"} 3
# HELP writebehind_queue_up 1 when the last scrape could read the queue state from Redis, else 0.
# TYPE writebehind_queue_up gauge
writebehind_queue_up 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"writebehind_lag", "writebehind_pending", "writebehind_stream_length", "writebehind_queue_up"); err != nil {
		t.Error(err)
	}
}

func TestPartitionsRedisDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewPartitions(queue.New(rdb, "x", 2), "g", time.Second))
	want := `
# HELP writebehind_queue_up 1 when the last scrape could read the queue state from Redis, else 0.
# TYPE writebehind_queue_up gauge
writebehind_queue_up 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
