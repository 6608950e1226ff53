package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of a test's own: three primaries with a
// replica each, every node a RedisServer on a free port.
type Cluster struct {
	Nodes []*RedisServer
	t     testing.TB
}

// StartCluster starts a cluster and waits until every slot is served; it
// skips the test if redis-server or redis-cli is not installed.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: cannot run a Redis Cluster of the test's own", bin)
		}
	}
	c := &Cluster{t: t}
	var addrs []string
	for range 6 {
		n := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--repl-diskless-sync-delay", "0")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	clients := make([]*redis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = n.Client()
	}
	WaitFor(t, 30*time.Second, "the cluster to serve every slot on every node, each primary with its replica in sync", func() bool {
		synced := 0
		for _, n := range clients {
			info, err := n.ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			repl, err := n.Info(context.Background(), "replication").Result()
			if err != nil {
				return false
			}
			if strings.Contains(repl, "role:master") && strings.Contains(repl, "state=online") {
				synced++
			}
		}
		return synced == 3
	})
	return c
}

// Client returns a cluster client seeded with every node, closed when the
// test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	// While slots move, a client can be sent back and forth more often than
	// the default three redirects allow.
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 128, MaxRedirects: 16})
	c.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Sentinel is a Redis Sentinel of a test's own, watching one primary under
// the name SentinelMaster.
type Sentinel struct {
	Port int
}

// SentinelMaster is the name a Sentinel of StartSentinel knows its primary
// by.
const SentinelMaster = "wbprimary"

// StartSentinel starts a Sentinel watching primary and waits until it knows
// it.
func StartSentinel(t testing.TB, primary *RedisServer) *Sentinel {
	t.Helper()
	s := &Sentinel{Port: FreePort(t)}
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\n",
		s.Port, SentinelMaster, primary.Port, SentinelMaster)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	Start(t, nil, "redis-server", conf, "--sentinel")
	c := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	defer c.Close()
	WaitFor(t, 20*time.Second, "the sentinel to know its primary", func() bool {
		addr, err := c.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
		return err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(primary.Port)
	})
	return s
}

// MoveSlot moves a hash slot, and the keys in it, from the primary serving
// it to another primary, the way redis-cli --cluster reshard does: the
// target imports, the source migrates, the keys go over with MIGRATE, and
// every primary is told the new owner. Clients see ASK and MOVED meanwhile.
func (c *Cluster) MoveSlot(slot int) {
	c.t.Helper()
	ctx := context.Background()
	var from, to *redis.Client
	var fromID, toID string
	for _, n := range c.Nodes {
		cl := n.Client()
		info, err := cl.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			continue
		}
		id, err := cl.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			c.t.Fatal(err)
		}
		owns := false
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, s := range slots {
			if slot >= s.Start && slot <= s.End && len(s.Nodes) > 0 && s.Nodes[0].ID == id {
				owns = true
			}
		}
		switch {
		case owns && from == nil:
			from, fromID = cl, id
		case !owns && to == nil:
			to, toID = cl, id
		}
	}
	if from == nil || to == nil {
		c.t.Fatalf("no primary owns slot %d, or none other to move it to", slot)
	}
	must := func(cmd *redis.Cmd) {
		c.t.Helper()
		if err := cmd.Err(); err != nil {
			c.t.Fatalf("%v: %v", cmd.Args(), err)
		}
	}
	must(to.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID))
	must(from.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID))
	host, port := "127.0.0.1", strings.TrimPrefix(to.Options().Addr, "127.0.0.1:")
	for {
		keys, err := from.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			c.t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(from.Do(ctx, args...))
	}
	// The new owner first, then the old, then the others, as redis-cli
	// does: the other way round they would redirect to each other.
	must(to.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID))
	must(from.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID))
	for _, n := range c.Nodes {
		cl := n.Client()
		if cl.Options().Addr == to.Options().Addr || cl.Options().Addr == from.Options().Addr {
			continue
		}
		if info, err := cl.Info(ctx, "replication").Result(); err == nil && strings.Contains(info, "role:master") {
			must(cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID))
		}
	}
}

// URL is the cluster's redis+cluster:// URL, seeded with every node.
func (c *Cluster) URL() string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// StartReplica starts a server replicating primary and waits until it is
// in sync.
func StartReplica(t testing.TB, primary *RedisServer) *RedisServer {
	t.Helper()
	ctx := context.Background()
	replica := StartRedis(t)
	if err := primary.Client().ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Client().ReplicaOf(ctx, "127.0.0.1", fmt.Sprint(primary.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 20*time.Second, "the replica to sync", func() bool {
		info, err := replica.Client().Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return replica
}

// Shape is a Redis deployment that the same test or benchmark body runs
// on.
type Shape struct {
	Name string
	// Start starts a deployment of the shape of tb's own, stopped when tb
	// ends, and returns a client of it, closed then too, and its
	// WB_REDIS_URL.
	Start func(tb testing.TB) (redis.UniversalClient, string)
}

// Shapes are the Redis deployments the benchmarks compare, each node
// started with the same settings (append-only file, fsync on every write):
// one server; one server with a replica, as a Sentinel deployment runs; and
// a cluster of three primaries with a replica each.
var Shapes = []Shape{
	{"redis", func(tb testing.TB) (redis.UniversalClient, string) {
		s := StartRedis(tb)
		return s.Client(), s.URL()
	}},
	{"replicated", func(tb testing.TB) (redis.UniversalClient, string) {
		s := StartRedis(tb)
		StartReplica(tb, s)
		return s.Client(), s.URL()
	}},
	{"cluster", func(tb testing.TB) (redis.UniversalClient, string) {
		c := StartCluster(tb)
		return c.Client(), c.URL()
	}},
}

// Deployment is a Redis a promise test runs its body on.
type Deployment struct {
	Client redis.UniversalClient
	// URL is the deployment's WB_REDIS_URL.
	URL string
	// Cluster is the cluster of the test's own, nil on one server.
	Cluster *Cluster
}

// Namespace returns a namespace of t's own on the deployment; on the test
// Redis its keys are deleted when t ends (a cluster of the test's own goes
// with the test).
func (d Deployment) Namespace(t testing.TB) string {
	ns := Name("t")
	if d.Cluster == nil {
		t.Cleanup(func() { DeleteNamespace(context.Background(), d.Client, ns) })
	}
	return ns
}

// OnEveryShape runs body in a parallel subtest per Redis shape the promises
// hold on: "redis", the test Redis (WB_TEST_REDIS_URL), and "cluster", a
// Redis Cluster of the test's own, three primaries with a replica each.
// One body, written once, checks a promise on both.
func OnEveryShape(t *testing.T, body func(t *testing.T, d Deployment)) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rdb, _ := Redis(t)
		body(t, Deployment{Client: rdb, URL: RedisURL()})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := StartCluster(t)
		body(t, Deployment{Client: c.Client(), URL: c.URL(), Cluster: c})
	})
}
