package startup

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/config"
	"github.com/writebehind/writebehind/internal/queue"
)

// Settings are the commands' own: where Redis and PostgreSQL are, how they
// log and whether they trust Redis's settings.
type Settings struct {
	// RedisURL locates Redis (redis:// or rediss://).
	RedisURL string `envconfig:"REDIS_URL" default:"redis://127.0.0.1:6379/0" desc:"Redis URL"`
	// PostgresURL locates PostgreSQL.
	PostgresURL string `envconfig:"POSTGRES_URL" default:"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" desc:"PostgreSQL URL"`
	// LogLevel is the zerolog level of the commands.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"log level: trace, debug, info, warn, error"`
	// Strict makes the commands refuse to start when Redis could lose
	// unflushed writes (eviction policy, no persistence).
	Strict bool `envconfig:"STRICT" default:"false" desc:"refuse to start when Redis settings could lose unflushed writes"`
}

// DefaultSettings returns the settings with every default applied.
func DefaultSettings() Settings { return config.Defaults[Settings]() }

// Validate checks every rule, then parses the connection URLs, so a
// malformed one is a configuration error naming its variable (without its
// password) before anything runs.
func (s Settings) Validate() error {
	switch {
	case s.RedisURL == "":
		return config.Bad("REDIS_URL", "must be set", `""`)
	case s.PostgresURL == "":
		return config.Bad("POSTGRES_URL", "must be set", `""`)
	case !slices.Contains([]string{"trace", "debug", "info", "warn", "error"}, s.LogLevel):
		return config.Bad("LOG_LEVEL", "must be trace, debug, info, warn or error", fmt.Sprintf("%q", s.LogLevel))
	}
	if _, err := ParseRedisURL(s.RedisURL); err != nil {
		return fmt.Errorf("%w: WB_REDIS_URL: %w", writebehind.ErrInvalidConfig, err)
	}
	if _, err := pgxpool.ParseConfig(s.PostgresURL); err != nil {
		return fmt.Errorf("%w: WB_POSTGRES_URL: %w", writebehind.ErrInvalidConfig, RedactError(err, s.PostgresURL))
	}
	return nil
}

// FlusherConfig is what a flusher reads besides the Settings: the Store it
// flushes, and how it reads, flushes, reclaims, trims and is watched.
type FlusherConfig struct {
	writebehind.Store
	// Group is the flushers' consumer group.
	Group string `envconfig:"GROUP" default:"flushers" desc:"consumer group of the flushers"`
	// Consumer names this flusher in the group; empty means the host name.
	Consumer string `envconfig:"CONSUMER" desc:"consumer name of this flusher (default: host name)"`
	// BatchSize caps the entries a flusher reads from a partition at once.
	BatchSize int `envconfig:"BATCH_SIZE" default:"500" desc:"entries per batch"`
	// ClaimMinIdle is how long an entry stays pending with a consumer before
	// another flusher takes it over.
	ClaimMinIdle time.Duration `envconfig:"CLAIM_MIN_IDLE" default:"30s" desc:"idle time after which pending entries are reclaimed"`
	// ClaimInterval is how often a flusher looks for entries to reclaim.
	ClaimInterval time.Duration `envconfig:"CLAIM_INTERVAL" default:"5s" desc:"how often to look for entries to reclaim"`
	// CleanTTLs are given to the values flushed.
	writebehind.CleanTTLs
	// MaxIDBytes and MaxValueBytes are the writers' bounds, for the largest
	// entry.
	MaxIDBytes    int `envconfig:"MAX_ID_BYTES" default:"256" desc:"longest id accepted, in bytes"`
	MaxValueBytes int `envconfig:"MAX_VALUE_BYTES" default:"1048576" desc:"largest value accepted, in bytes"`
	// MaxBatchBytes bounds the entries a flusher reads from a partition at
	// once, and MaxInflightBytes all it holds, over every partition: read
	// ahead and being flushed. An entry counts for its id, entity and value
	// plus about 600 bytes.
	MaxBatchBytes    int64 `envconfig:"MAX_BATCH_BYTES" default:"4194304" desc:"most bytes of entries a flusher reads from a partition at once"`
	MaxInflightBytes int64 `envconfig:"MAX_INFLIGHT_BYTES" default:"16777216" desc:"most bytes of entries a flusher holds at once, over every partition"`
	// MaxDeliveries is how often an entry may be delivered before it is
	// flushed on its own and, failing again, dead-lettered, so a
	// crash-looping op cannot stall its partition.
	MaxDeliveries int `envconfig:"MAX_DELIVERIES" default:"10" desc:"deliveries of an entry before it is flushed on its own, then dead-lettered if it fails again"`
	// ShutdownTimeout bounds how long a stopping flusher keeps trying to
	// commit and acknowledge the batches in hand.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s" desc:"time a stopping flusher has to finish the batches in hand"`
	// ConsumerIdleTimeout is how long a consumer with nothing pending may be
	// idle before it is removed from the group; 0 keeps them.
	ConsumerIdleTimeout time.Duration `envconfig:"CONSUMER_IDLE_TIMEOUT" default:"1h" desc:"idle time after which a consumer with nothing pending is removed (0: never)"`
	// TrimInterval is how often flushers trim what every group acknowledged.
	TrimInterval time.Duration `envconfig:"TRIM_INTERVAL" default:"30s" desc:"how often acknowledged entries are trimmed from the streams"`
	// MaxClockSkew is how far ahead of the flushers' clocks a version may
	// be: stream entries beyond it are dead-lettered.
	MaxClockSkew time.Duration `envconfig:"MAX_CLOCK_SKEW" default:"1m" desc:"how far ahead of Redis's and the flushers' clocks a version may be"`
	// MetricsAddr is where `flusher run` serves /metrics, /healthz and
	// /readyz; empty disables the server.
	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9090" desc:"listen address of /metrics, /healthz, /readyz (empty: off)"`
}

// DefaultFlusherConfig returns the flusher's configuration with every
// default applied, the consumer named for the host.
func DefaultFlusherConfig() FlusherConfig { return config.Defaults[FlusherConfig]().WithDefaults() }

// WithDefaults returns c with its zero fields set to their defaults (the
// consumer's to the host name), but for those 0 means something for: a zero
// CleanTTL, ConsumerIdleTimeout or MetricsAddr stays.
func (c FlusherConfig) WithDefaults() FlusherConfig {
	c.defaultHost()
	return config.WithDefaults(c, "CleanTTL", "ConsumerIdleTimeout", "MetricsAddr")
}

// defaultHost names the consumer for the host when nothing names it.
func (c *FlusherConfig) defaultHost() {
	if c.Consumer == "" {
		c.Consumer, _ = os.Hostname()
	}
}

// LargestEntry is the most one stream entry counts for in a flusher's
// memory budget: an op with the longest id and value the writers accept.
func (c FlusherConfig) LargestEntry() int64 { return queue.LargestEntry(c.MaxIDBytes, c.MaxValueBytes) }

// Validate checks every rule; the error names the first variable that breaks
// one.
func (c FlusherConfig) Validate() error {
	bad := config.Bad
	switch err := config.First(c.Store.Validate(), c.CleanTTLs.Validate(c.AllEntities()), config.MaxIDBytes(c.MaxIDBytes), config.MaxValueBytes(c.MaxValueBytes)); {
	case err != nil:
		return err
	case c.Group == "":
		return bad("GROUP", "must be set", `""`)
	case c.Consumer == "":
		return bad("CONSUMER", "must be set (no host name to default to)", `""`)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return bad("BATCH_SIZE", "must be between 1 and 10000", c.BatchSize)
	case c.ClaimMinIdle < time.Second:
		return bad("CLAIM_MIN_IDLE", "must be at least 1s", c.ClaimMinIdle)
	case c.ClaimInterval < 10*time.Millisecond:
		return bad("CLAIM_INTERVAL", "must be at least 10ms", c.ClaimInterval)
	case c.MaxBatchBytes < c.LargestEntry():
		return bad("MAX_BATCH_BYTES", fmt.Sprintf("must hold the largest entry, %d bytes with WB_MAX_VALUE_BYTES=%d and WB_MAX_ID_BYTES=%d", c.LargestEntry(), c.MaxValueBytes, c.MaxIDBytes), c.MaxBatchBytes)
	case c.MaxInflightBytes < c.MaxBatchBytes:
		return bad("MAX_INFLIGHT_BYTES", "must be at least WB_MAX_BATCH_BYTES", c.MaxInflightBytes)
	case c.MaxDeliveries < 1:
		return bad("MAX_DELIVERIES", "must be at least 1", c.MaxDeliveries)
	case c.ShutdownTimeout < time.Millisecond:
		return bad("SHUTDOWN_TIMEOUT", "must be at least 1ms", c.ShutdownTimeout)
	case c.ConsumerIdleTimeout != 0 && c.ConsumerIdleTimeout < c.ClaimMinIdle:
		return bad("CONSUMER_IDLE_TIMEOUT", "must be 0 or at least WB_CLAIM_MIN_IDLE", c.ConsumerIdleTimeout)
	case c.TrimInterval < 10*time.Millisecond:
		return bad("TRIM_INTERVAL", "must be at least 10ms", c.TrimInterval)
	case c.MaxClockSkew < time.Millisecond:
		return bad("MAX_CLOCK_SKEW", "must be at least 1ms", c.MaxClockSkew)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || !validPort(port) {
			return bad("METRICS_ADDR", "must be host:port or :port, or empty to disable", fmt.Sprintf("%q", c.MetricsAddr))
		}
	}
	return nil
}

// validPort reports whether s is a TCP port number (0 picks a free one).
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}
