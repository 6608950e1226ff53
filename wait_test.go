package writebehind_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestWaitReplicas: with WB_WAIT_REPLICAS the writer returns only once that
// many replicas acknowledged; with more than exist it returns
// ErrNotReplicated after WB_WAIT_TIMEOUT (the op itself is written).
func TestWaitReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := testenv.StartRedis(t)
	replica := testenv.StartReplica(t, primary)
	rdb, rep := primary.Client(), replica.Client()

	cfg := writebehind.DefaultWriterConfig()
	cfg.Namespace = "w"
	cfg.WaitReplicas = 1
	cfg.WaitTimeout = 5 * time.Second
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, "user", "1", []byte(`{"n":1}`)); err != nil {
		t.Fatalf("put with one replica: %v", err)
	}
	// WAIT returned: the replica holds the value already.
	if n, err := rep.Exists(ctx, "w:{w:"+fmt.Sprint(op.Partition("user", "1", cfg.Partitions))+"}:v:user:1").Result(); err != nil || n != 1 {
		t.Fatalf("replica does not hold the value after WAIT: %d, %v", n, err)
	}

	cfg.WaitReplicas = 2
	cfg.WaitTimeout = 50 * time.Millisecond
	w2, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range w2.Apply(ctx, []writebehind.Op{
		{Kind: writebehind.OpPut, Entity: "user", ID: "2", Value: []byte(`{}`)},
		{Kind: writebehind.OpDelete, Entity: "user", ID: "3"},
	}) {
		if !errors.Is(r.Err, writebehind.ErrNotReplicated) || r.Version == 0 {
			t.Fatalf("apply awaiting 2 of 1 replicas: %+v, want ErrNotReplicated with a version", r)
		}
	}
}

// TestFailureConfig: the new variables are read and their rules name them,
// in the component that reads each.
func TestFailureConfig(t *testing.T) {
	cfg, f, set := writebehind.DefaultWriterConfig(), startup.DefaultFlusherConfig(), startup.DefaultSettings()
	if f.MaxDeliveries != 10 || f.ShutdownTimeout != 30*time.Second || f.ConsumerIdleTimeout != time.Hour ||
		f.TrimInterval != 30*time.Second || cfg.MaxBacklog != 1_000_000 || set.Strict || cfg.WaitReplicas != 0 ||
		cfg.WaitTimeout != time.Second {
		t.Fatalf("defaults: %+v %+v %+v", cfg, f, set)
	}
	flusher := func() error { return startup.Load(&startup.FlusherConfig{}) }
	writer := func() error { _, err := writebehind.LoadWriterConfig(); return err }
	settings := func() error { return startup.Load(&startup.Settings{}) }
	for _, c := range []struct {
		name, value string
		load        func() error
	}{
		{"WB_MAX_DELIVERIES", "0", flusher},
		{"WB_SHUTDOWN_TIMEOUT", "-1s", flusher},
		{"WB_CONSUMER_IDLE_TIMEOUT", "1s", flusher},
		{"WB_TRIM_INTERVAL", "1ms", flusher},
		{"WB_MAX_BACKLOG", "-1", writer},
		{"WB_WAIT_REPLICAS", "-1", writer},
		{"WB_STRICT", "maybe", settings},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(c.name, c.value)
			err := c.load()
			if !errors.Is(err, writebehind.ErrInvalidConfig) || !strings.Contains(err.Error(), c.name) {
				t.Fatalf("%s=%s: %v, want ErrInvalidConfig naming it", c.name, c.value, err)
			}
		})
	}
}

// TestWaitReplicasOnACluster: on a Redis Cluster, WB_WAIT_REPLICAS waits for
// the replica of the primary that took the write, not of whichever node a
// keyless WAIT would be sent to: with that replica paused, the write is
// written but reported not replicated, while writes on other primaries are.
func TestWaitReplicasOnACluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := testenv.StartCluster(t)
	rdb := cluster.Client()
	cfg := writebehind.DefaultWriterConfig()
	cfg.Namespace = testenv.Name("w")
	cfg.WaitReplicas = 1
	cfg.WaitTimeout = 300 * time.Millisecond
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Pause the replica of the primary serving key 1.
	key := fmt.Sprintf("%s:{%s:%d}:v:user:1", cfg.Namespace, cfg.Namespace, op.Partition("user", "1", cfg.Partitions))
	primary, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	info, err := primary.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	var paused *testenv.RedisServer
	for _, n := range cluster.Nodes {
		if strings.Contains(info, fmt.Sprintf("port=%d,", n.Port)) {
			paused = n
		}
	}
	if paused == nil {
		t.Fatalf("no replica of %s among the nodes:\n%s", primary.Options().Addr, info)
	}
	paused.Signal(syscall.SIGSTOP)
	defer paused.Signal(syscall.SIGCONT)

	for range 3 {
		if _, err := w.Put(ctx, "user", "1", []byte(`{"n":1}`)); !errors.Is(err, writebehind.ErrNotReplicated) {
			t.Fatalf("put with the primary's replica paused: err = %v, want ErrNotReplicated", err)
		}
	}
	// A key on another primary is replicated as usual.
	for i := 2; ; i++ {
		id := fmt.Sprint(i)
		other, err := rdb.MasterForKey(ctx, fmt.Sprintf("%s:{%s:%d}:v:user:%s", cfg.Namespace, cfg.Namespace, op.Partition("user", id, cfg.Partitions), id))
		if err != nil {
			t.Fatal(err)
		}
		if other.Options().Addr == primary.Options().Addr {
			continue
		}
		if _, err := w.Put(ctx, "user", id, []byte(`{"n":1}`)); err != nil {
			t.Fatalf("put on another primary: %v", err)
		}
		break
	}
}
