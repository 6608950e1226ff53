package faults_test

import (
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// TestPromises runs the fault tests that hold on every Redis shape, each
// written once, on one Redis server and on a Redis Cluster of three
// primaries with a replica each: a flusher killed mid-batch, a PostgreSQL
// outage, dead letters, trimming past a lagging group, backpressure, and
// the dlq commands.
func TestPromises(t *testing.T) {
	t.Parallel()
	testenv.OnEveryShape(t, func(t *testing.T, d testenv.Deployment) {
		// onEnv runs body on an env of d and the test PostgreSQL.
		onEnv := func(body func(*testing.T, *env)) func(*testing.T, testenv.Deployment) {
			return func(t *testing.T, d testenv.Deployment) {
				pool, schema := testenv.Postgres(t)
				body(t, newEnv(t, d.Client, d.URL, d.Namespace(t), pool, testenv.PostgresURL(), schema))
			}
		}
		for _, tc := range []struct {
			name string
			body func(*testing.T, testenv.Deployment)
		}{
			{"FlusherKilledMidBatch", onEnv(flusherKilledMidBatch)},
			{"PostgresOutage", postgresOutage},
			{"ConstraintViolationDeadLettersOnlyTheBadOp", onEnv(constraintViolationDeadLettersOnlyTheBadOp)},
			{"TriggerRejectionDeadLettersOnlyTheBadOp", onEnv(triggerRejectionDeadLettersOnlyTheBadOp)},
			{"UndecodableEntriesAreDeadLettered", onEnv(undecodableEntriesAreDeadLettered)},
			{"OverDeliveredEntryIsDeadLettered", onEnv(overDeliveredEntryIsDeadLettered)},
			{"TrimmingSparesALaggingGroup", onEnv(trimmingSparesALaggingGroup)},
			{"Backpressure", onEnv(backpressure)},
			{"DLQCommands", onEnv(dlqCommands)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.body(t, d)
			})
		}
	})
}
