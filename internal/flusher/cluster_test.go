package flusher

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestPromises: the flusher's promises, each written once, on one Redis
// server and on a Redis Cluster of three primaries with a replica each.
// On the cluster every partition's keys sit in one slot, so writes, reads,
// flushes and acknowledgements work as on one server, with the partitions
// spread over several primaries; and the convergence test runs once more
// while the slot of every partition moves to another primary.
func TestPromises(t *testing.T) {
	t.Parallel()
	testenv.OnEveryShape(t, func(t *testing.T, d testenv.Deployment) {
		on := func(t *testing.T, partitions int) bundle {
			return setupOn(t, d.Client, spread(t, d, partitions), partitions)
		}
		for _, tc := range []struct {
			name       string
			partitions int
			body       func(*testing.T, bundle)
		}{
			{"RandomWritesConvergeToLastWrite", 4, func(t *testing.T, b bundle) { randomWritesConverge(t, b) }},
			{"TwoFlushersConvergeWithoutDeadlock", 2, twoFlushersConverge},
			{"ReplayedBatchChangesNothing", 1, replayedBatchChangesNothing},
			{"FlushMarksCachedValuesCleanOnlyAtTheirVersion", 1, flushMarksCleanOnlyAtTheirVersion},
			{"DrainCountsOpsAndRows", 3, drainCountsOpsAndRows},
			{"VersionFarAheadIsDeadLettered", 1, versionFarAheadIsDeadLettered},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.body(t, on(t, tc.partitions))
			})
		}
		t.Run("OlderOpAfterNewerChangesNothing", func(t *testing.T) {
			t.Parallel()
			olderOpAfterNewerChangesNothing(t, func(t *testing.T) bundle { return on(t, 1) })
		})
		if d.Cluster == nil {
			return
		}
		t.Run("ConvergesWhileSlotsMove", func(t *testing.T) {
			t.Parallel()
			b := on(t, 4)
			// Every partition's slot moves to another primary while
			// writers write and the flusher flushes.
			var moves []func()
			for p := range 4 {
				slot, err := b.rdb.(*redis.ClusterClient).ClusterKeySlot(context.Background(), b.q.Keys().Stream(p)).Result()
				if err != nil {
					t.Fatal(err)
				}
				moves = append(moves, func() { d.Cluster.MoveSlot(int(slot)) })
			}
			randomWritesConverge(t, b, moves...)
		})
	})
}

// spread returns a namespace of t's own on d; on a cluster, one whose
// partition streams are served by more than one primary, so a test on it
// spans nodes.
func spread(t *testing.T, d testenv.Deployment, partitions int) string {
	t.Helper()
	rdb, ok := d.Client.(*redis.ClusterClient)
	if !ok || partitions < 2 {
		return d.Namespace(t)
	}
	for {
		ns := d.Namespace(t)
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
