package faults_test

import (
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// TestPromises runs the fault tests that hold on every Redis shape, each
// written once, on one Redis server and on a Redis Cluster of three
// primaries with a replica each: a flusher killed mid-batch, dead letters,
// trimming past a lagging group, backpressure, and the dlq commands.
func TestPromises(t *testing.T) {
	t.Parallel()
	testenv.OnEveryShape(t, func(t *testing.T, d testenv.Deployment) {
		for _, tc := range []struct {
			name string
			body func(*testing.T, *env)
		}{
			{"FlusherKilledMidBatch", flusherKilledMidBatch},
			{"ConstraintViolationDeadLettersOnlyTheBadOp", constraintViolationDeadLettersOnlyTheBadOp},
			{"TriggerRejectionDeadLettersOnlyTheBadOp", triggerRejectionDeadLettersOnlyTheBadOp},
			{"UndecodableEntriesAreDeadLettered", undecodableEntriesAreDeadLettered},
			{"OverDeliveredEntryIsDeadLettered", overDeliveredEntryIsDeadLettered},
			{"TrimmingSparesALaggingGroup", trimmingSparesALaggingGroup},
			{"Backpressure", backpressure},
			{"DLQCommands", dlqCommands},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				pool, schema := testenv.Postgres(t)
				tc.body(t, newEnv(t, d.Client, d.URL, d.Namespace(t), pool, testenv.PostgresURL(), schema))
			})
		}
	})
}
