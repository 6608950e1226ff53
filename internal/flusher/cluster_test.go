package flusher

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/testenv"
)

// The flusher's promises on a Redis Cluster of three primaries with a
// replica each: every partition's keys sit in one slot, so writes, reads,
// flushes and acknowledgements work as on one server, with the partitions
// spread over several primaries.
func TestOnACluster(t *testing.T) {
	t.Parallel()
	cluster := testenv.StartCluster(t)
	rdb := cluster.Client()
	t.Run("RandomWritesConvergeToLastWrite", func(t *testing.T) {
		t.Parallel()
		randomWritesConverge(t, setupOn(t, rdb, spread(t, rdb, 4), 4))
	})
	t.Run("ConvergesWhileSlotsMove", func(t *testing.T) {
		t.Parallel()
		b := setupOn(t, rdb, spread(t, rdb, 4), 4)
		// Every partition's slot moves to another primary while writers
		// write and the flusher flushes.
		var moves []func()
		for p := range 4 {
			slot, err := rdb.ClusterKeySlot(context.Background(), b.q.Keys().Stream(p)).Result()
			if err != nil {
				t.Fatal(err)
			}
			moves = append(moves, func() { cluster.MoveSlot(int(slot)) })
		}
		randomWritesConverge(t, b, moves...)
	})
	t.Run("TwoFlushersConvergeWithoutDeadlock", func(t *testing.T) {
		t.Parallel()
		twoFlushersConverge(t, setupOn(t, rdb, spread(t, rdb, 2), 2))
	})
}

// spread returns a namespace whose partition streams are served by more than
// one primary, so a test on it spans nodes.
func spread(t *testing.T, rdb *redis.ClusterClient, partitions int) string {
	t.Helper()
	for {
		ns := testenv.Name("t")
		primaries := map[string]bool{}
		for p := range partitions {
			node, err := rdb.MasterForKey(context.Background(), keyspace.NewKeys(ns).Stream(p))
			if err != nil {
				t.Fatal(err)
			}
			primaries[node.Options().Addr] = true
		}
		if len(primaries) > 1 {
			return ns
		}
	}
}
