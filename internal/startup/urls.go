package startup

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/writebehind/writebehind"
)

// checkURLs parses the connection URLs, so a malformed one is a
// configuration error naming its variable (without its password) before
// anything runs.
func checkURLs(cfg writebehind.Config) error {
	if _, err := ParseRedisURL(cfg.RedisURL); err != nil {
		return fmt.Errorf("%w: WB_REDIS_URL: %w", writebehind.ErrInvalidConfig, err)
	}
	if _, err := pgxpool.ParseConfig(cfg.PostgresURL); err != nil {
		return fmt.Errorf("%w: WB_POSTGRES_URL: %w", writebehind.ErrInvalidConfig, RedactError(err, cfg.PostgresURL))
	}
	return nil
}
