package readpath

import (
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// TestPromises runs the read path's consistency tests, each written once,
// on one Redis server and on a Redis Cluster of three primaries with a
// replica each.
func TestPromises(t *testing.T) {
	t.Parallel()
	testenv.OnEveryShape(t, func(t *testing.T, d testenv.Deployment) {
		for _, tc := range []struct {
			name string
			body func(*testing.T, *env)
		}{
			{"FillLosesToPutDuringLoad", fillLosesToPutDuringLoad},
			{"StaleFillAfterFlushAndExpiry", staleFillAfterFlushAndExpiry},
			{"UnflushedValueNeverExpiresAndDeleteIsVisible", unflushedValueNeverExpiresAndDeleteIsVisible},
			{"ConcurrentMissesShareOneLoad", concurrentMissesShareOneLoad},
			{"NegativeCacheAndPutReplacesIt", negativeCacheAndPutReplacesIt},
			{"GetManyKeepsOrder", getManyKeepsOrder},
			{"WholeEntityInvalidation", wholeEntityInvalidation},
			{"XFetchRefreshesBeforeExpiry", xFetchRefreshesBeforeExpiry},
			{"ReadAsideLeaseLosesToWrite", readAsideLeaseLosesToWrite},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.body(t, setupOn(t, d.Client, d.Namespace(t)))
			})
		}
	})
}
