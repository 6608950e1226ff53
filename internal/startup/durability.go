package startup

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/queue"
)

// ErrUnsafeRedis is returned by CheckRedis under WB_STRICT=true when a Redis
// setting could lose unflushed writes.
var ErrUnsafeRedis = errors.New("redis settings could lose unflushed writes (WB_STRICT=true)")

// CheckRedis logs every Redis setting that could lose writes acknowledged to
// producers before they are flushed, and fails with ErrUnsafeRedis when
// cfg.Strict is set and there is one. A Redis that hides its configuration
// is only warned about.
func CheckRedis(ctx context.Context, cfg Settings, q *queue.Queue, log zerolog.Logger) error {
	found, err := q.CheckDurability(ctx)
	if errors.Is(err, queue.ErrCannotCheck) {
		log.Warn().Err(err).Msg("could not check that Redis keeps unflushed writes safe (eviction policy, persistence)")
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range found {
		log.Warn().Str("setting", f.Setting).Str("value", f.Value).Msg("UNSAFE REDIS SETTING: " + f.Risk)
	}
	if cfg.Strict && len(found) > 0 {
		return fmt.Errorf("%w: %s", ErrUnsafeRedis, found[0])
	}
	return nil
}
