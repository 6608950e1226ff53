// Package writebehind makes writes at Redis speed durable in PostgreSQL.
//
// A Writer updates the cached value of a document and appends the write to a
// partitioned Redis Stream in one atomic step, then returns; flushers
// (cmd/flusher) upsert the writes into PostgreSQL in batches, guarded by a
// version that strictly increases per key, so the database converges to the
// last write whatever is replayed or reordered. A Reader serves documents from
// the cache, which always holds unflushed writes, and from PostgreSQL
// otherwise.
package writebehind

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// Config is the whole configuration, read from WB_ environment variables by
// LoadConfig. The zero value is not usable: start from DefaultConfig or
// LoadConfig.
type Config struct {
	// RedisURL locates Redis (redis:// or rediss://).
	RedisURL string `envconfig:"REDIS_URL" default:"redis://127.0.0.1:6379/0" desc:"Redis URL"`
	// PostgresURL locates PostgreSQL.
	PostgresURL string `envconfig:"POSTGRES_URL" default:"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" desc:"PostgreSQL URL"`
	// Namespace prefixes every Redis key, so deployments can share a Redis.
	Namespace string `envconfig:"NAMESPACE" default:"wb" desc:"prefix of every Redis key"`
	// Entities maps entity names to tables ("table" or "schema.table").
	Entities Entities `envconfig:"ENTITIES" default:"user=users,session=sessions" desc:"entity=table pairs, comma-separated"`
	// Partitions is the number of streams; fixed for the life of the data.
	Partitions int `envconfig:"PARTITIONS" default:"16" desc:"number of partition streams (fixed once data exists)"`
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
	// CleanTTL is the TTL of flushed cached values; 0 keeps them.
	CleanTTL time.Duration `envconfig:"CLEAN_TTL" default:"10m" desc:"TTL of cached values once flushed (0: keep)"`
	// MaxIDBytes bounds an id.
	MaxIDBytes int `envconfig:"MAX_ID_BYTES" default:"256" desc:"longest id accepted, in bytes"`
	// MaxValueBytes bounds a value.
	MaxValueBytes int `envconfig:"MAX_VALUE_BYTES" default:"1048576" desc:"largest value accepted, in bytes"`
	// LogLevel is the zerolog level of the commands.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"log level: trace, debug, info, warn, error"`
	// MetricsAddr is where `flusher run` serves /metrics, /healthz and
	// /readyz; empty disables the server.
	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9090" desc:"listen address of /metrics, /healthz, /readyz (empty: off)"`
	// EntityTTLs overrides CleanTTL per entity, for fills and flushes.
	EntityTTLs EntityTTLs `envconfig:"ENTITY_TTLS" desc:"entity=duration pairs overriding WB_CLEAN_TTL, comma-separated"`
	// NegativeTTL is how long a "not found" stays cached.
	NegativeTTL time.Duration `envconfig:"NEGATIVE_TTL" default:"30s" desc:"TTL of cached not-found answers"`
	// XFetchBeta scales early refresh of clean values (XFetch); 0 disables it.
	XFetchBeta float64 `envconfig:"XFETCH_BETA" default:"1" desc:"early refresh eagerness (0: off)"`
	// ReadLock makes readers of other processes wait for the one loading a
	// key instead of loading it too.
	ReadLock bool `envconfig:"READ_LOCK" default:"false" desc:"wait for another process loading the same key"`
	// ReadLockWait bounds that wait; then the reader loads itself.
	ReadLockWait time.Duration `envconfig:"READ_LOCK_WAIT" default:"200ms" desc:"longest wait for another process's load"`
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
	// MaxBacklog is the most entries a partition stream may hold before
	// writes are refused with ErrBackpressure; 0 disables the check.
	MaxBacklog int64 `envconfig:"MAX_BACKLOG" default:"1000000" desc:"entries per partition stream before writes are refused (0: no limit)"`
	// Strict makes the commands refuse to start when Redis could lose
	// unflushed writes (eviction policy, no persistence).
	Strict bool `envconfig:"STRICT" default:"false" desc:"refuse to start when Redis settings could lose unflushed writes"`
	// WaitReplicas is how many replicas must acknowledge each write before
	// it returns; 0 does not wait.
	WaitReplicas int `envconfig:"WAIT_REPLICAS" default:"0" desc:"replicas that must acknowledge each write (0: none)"`
	// MaxClockSkew is how far ahead of the clocks of Redis and of the
	// flushers a version may be: writes beyond it are refused, stream
	// entries beyond it dead-lettered, since such a version would win over
	// every later write of its key.
	MaxClockSkew time.Duration `envconfig:"MAX_CLOCK_SKEW" default:"1m" desc:"how far ahead of Redis's and the flushers' clocks a version may be"`
	// WriteThroughTimeout bounds a PutThrough or DeleteThrough's commit:
	// reads of the key wait for the write that long at most, then take its
	// writer for dead.
	WriteThroughTimeout time.Duration `envconfig:"WRITE_THROUGH_TIMEOUT" default:"5s" desc:"longest commit of a write-through; reads of its key wait for it"`
	// WaitTimeout bounds the wait for replicas.
	WaitTimeout time.Duration `envconfig:"WAIT_TIMEOUT" default:"1s" desc:"how long a write waits for WB_WAIT_REPLICAS"`
}

// EntityTTLs maps entity names to clean TTLs. It decodes from
// "user=5m,session=30s".
type EntityTTLs map[string]time.Duration

// Decode implements envconfig.Decoder.
func (e *EntityTTLs) Decode(s string) error {
	m := EntityTTLs{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, d, ok := strings.Cut(pair, "=")
		if !ok {
			return listError(fmt.Sprintf("%q is not entity=duration", pair))
		}
		name = strings.TrimSpace(name)
		if _, dup := m[name]; dup {
			return listError(fmt.Sprintf("entity %q appears twice", name))
		}
		ttl, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return listError(fmt.Sprintf("entity %q: %q is not a duration", name, d))
		}
		m[name] = ttl
	}
	*e = m
	return nil
}

// TTL returns the clean TTL of entity: its own, or CleanTTL.
func (c Config) TTL(entity string) time.Duration {
	if t, ok := c.EntityTTLs[entity]; ok {
		return t
	}
	return c.CleanTTL
}

// LargestEntry is the most one stream entry counts for in a flusher's
// memory budget: an op with the longest id and value the writers accept.
func (c Config) LargestEntry() int64 { return queue.LargestEntry(c.MaxIDBytes, c.MaxValueBytes) }

// Entities maps entity names to table names. It decodes from
// "user=users,session=app.sessions".
type Entities map[string]string

// Decode implements envconfig.Decoder.
func (e *Entities) Decode(s string) error {
	m := Entities{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, table, ok := strings.Cut(pair, "=")
		if !ok {
			return listError(fmt.Sprintf("%q is not entity=table", pair))
		}
		name, table = strings.TrimSpace(name), strings.TrimSpace(table)
		if _, dup := m[name]; dup {
			return listError(fmt.Sprintf("entity %q appears twice", name))
		}
		m[name] = table
	}
	*e = m
	return nil
}

// String renders the map the way Decode reads it, sorted by entity.
func (e Entities) String() string {
	names := make([]string, 0, len(e))
	for n := range e {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = n + "=" + e[n]
	}
	return strings.Join(names, ",")
}

// DefaultConfig returns the configuration with every default applied.
func DefaultConfig() Config {
	var c Config
	// With no WB_ variables set, Process only applies the defaults; it
	// cannot fail on them.
	if err := envconfig.Process("WB_DEFAULTS_ONLY_", &c); err != nil {
		panic(err)
	}
	return c.withDefaults()
}

// LoadConfig reads the configuration from WB_ environment variables and
// validates it. Its errors wrap ErrInvalidConfig and name the variable.
func LoadConfig() (Config, error) {
	var c Config
	if err := decimalOnly(); err != nil {
		return c, err
	}
	if err := envconfig.Process("WB", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			if le := listError(""); errors.As(pe.Err, &le) {
				return c, fmt.Errorf("%w: %s: %v, got %q", ErrInvalidConfig, pe.KeyName, le, pe.Value)
			}
			return c, fmt.Errorf("%w: %s: expected %s, got %q", ErrInvalidConfig, pe.KeyName, expected(pe.TypeName), pe.Value)
		}
		return c, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	c = c.withDefaults()
	return c, c.Validate()
}

// decimal is a whole number as an operator writes one. envconfig would also
// take 010 (octal: 8) and 0x10, so WB_PARTITIONS=010 would quietly mean 8.
var decimal = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)

// decimalOnly checks that every integer variable that is set is decimal.
func decimalOnly() error {
	rt := reflect.TypeFor[Config]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if k := f.Type.Kind(); k != reflect.Int && k != reflect.Int64 || f.Type == reflect.TypeFor[time.Duration]() {
			continue
		}
		name := "WB_" + f.Tag.Get("envconfig")
		if v, ok := os.LookupEnv(name); ok && !decimal.MatchString(strings.TrimSpace(v)) {
			return fmt.Errorf("%w: %s: expected a whole number in decimal, got %q", ErrInvalidConfig, name, v)
		}
	}
	return nil
}

// listError says why a list variable (WB_ENTITIES, WB_ENTITY_TTLS) does not
// decode: a name twice, a pair without "=". It is reported as it is; for
// the other types the expected form is the reason.
type listError string

func (e listError) Error() string { return string(e) }

func expected(typeName string) string {
	switch typeName {
	case "Duration":
		return "a duration like 500ms, 30s or 5m"
	case "int", "int64":
		return "a whole number"
	case "bool":
		return "true or false"
	case "float64":
		return "a number"
	}
	return typeName
}

func (c Config) withDefaults() Config {
	if c.Consumer == "" {
		c.Consumer, _ = os.Hostname()
	}
	return c
}

var (
	entityName    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	namespaceName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// The upper bounds of WB_MAX_ID_BYTES and WB_MAX_VALUE_BYTES: an id or value
// above what PostgreSQL can store would be acknowledged, then dead-lettered.
// A btree index entry holds about 2.7 kB on 8 kB pages.
const (
	maxIDBytesLimit    = 2048
	maxValueBytesLimit = 64 << 20
)

// wholeMillis reports whether d is a whole number of milliseconds: Redis
// TTLs are, and 500µs would round to 0, which means no TTL at all.
func wholeMillis(d time.Duration) bool { return d%time.Millisecond == 0 }

// Validate checks every rule; the error names the first variable that breaks
// one.
func (c Config) Validate() error {
	bad := func(name, rule string, got any) error {
		return fmt.Errorf("%w: WB_%s: %s, got %v", ErrInvalidConfig, name, rule, got)
	}
	switch {
	case c.RedisURL == "":
		return bad("REDIS_URL", "must be set", `""`)
	case c.PostgresURL == "":
		return bad("POSTGRES_URL", "must be set", `""`)
	case !namespaceName.MatchString(c.Namespace):
		return bad("NAMESPACE", "must be 1 to 64 of A-Z a-z 0-9 _ . -", fmt.Sprintf("%q", c.Namespace))
	case len(c.Entities) == 0:
		return bad("ENTITIES", "must name at least one entity=table", `""`)
	case c.Partitions < 1 || c.Partitions > 1024:
		return bad("PARTITIONS", "must be between 1 and 1024", c.Partitions)
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
	case c.CleanTTL < 0 || !wholeMillis(c.CleanTTL):
		return bad("CLEAN_TTL", "must be 0 (keep) or a whole number of milliseconds", c.CleanTTL)
	case c.MaxIDBytes < 1 || c.MaxIDBytes > maxIDBytesLimit:
		return bad("MAX_ID_BYTES", fmt.Sprintf("must be between 1 and %d (PostgreSQL's primary key index holds no longer id)", maxIDBytesLimit), c.MaxIDBytes)
	case c.MaxValueBytes < 2 || c.MaxValueBytes > maxValueBytesLimit:
		return bad("MAX_VALUE_BYTES", fmt.Sprintf("must be between 2 and %d (jsonb stores at most 255 MiB, in a form that can be larger than the text)", maxValueBytesLimit), c.MaxValueBytes)
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
	case c.MaxBacklog < 0:
		return bad("MAX_BACKLOG", "must not be negative", c.MaxBacklog)
	case c.WaitReplicas < 0:
		return bad("WAIT_REPLICAS", "must not be negative", c.WaitReplicas)
	case c.WaitReplicas > 0 && c.WaitTimeout < time.Millisecond:
		return bad("WAIT_TIMEOUT", "must be at least 1ms when WB_WAIT_REPLICAS is set", c.WaitTimeout)
	}
	// Two entities on one table would overwrite and delete each other's
	// rows; an unqualified name is the one in schema public.
	owner := make(map[string]string, len(c.Entities))
	for _, name := range slices.Sorted(maps.Keys(c.Entities)) {
		if !entityName.MatchString(name) {
			return bad("ENTITIES", "entity names must match [a-z][a-z0-9_]*", fmt.Sprintf("%q", name))
		}
		table, err := sink.ParseTable(c.Entities[name])
		if err != nil {
			return bad("ENTITIES", "entity "+name+": "+err.Error(), fmt.Sprintf("%q", c.Entities[name]))
		}
		if len(table) == 1 {
			table = append([]string{"public"}, table...)
		}
		q := table.Sanitize()
		if other, dup := owner[q]; dup {
			return bad("ENTITIES", "entities "+other+" and "+name+" share table "+q, fmt.Sprintf("%q", c.Entities.String()))
		}
		owner[q] = name
	}
	if !slices.Contains([]string{"trace", "debug", "info", "warn", "error"}, c.LogLevel) {
		return bad("LOG_LEVEL", "must be trace, debug, info, warn or error", fmt.Sprintf("%q", c.LogLevel))
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || !validPort(port) {
			return bad("METRICS_ADDR", "must be host:port or :port, or empty to disable", fmt.Sprintf("%q", c.MetricsAddr))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.EntityTTLs)) {
		if _, ok := c.Entities[name]; !ok {
			return bad("ENTITY_TTLS", "names an entity not in WB_ENTITIES", fmt.Sprintf("%q", name))
		}
		if c.EntityTTLs[name] < 0 || !wholeMillis(c.EntityTTLs[name]) {
			return bad("ENTITY_TTLS", "entity "+name+": must be 0 (keep) or a whole number of milliseconds", c.EntityTTLs[name])
		}
	}
	switch {
	case c.NegativeTTL < 0 || !wholeMillis(c.NegativeTTL):
		return bad("NEGATIVE_TTL", "must be 0 (none) or a whole number of milliseconds", c.NegativeTTL)
	case !(c.XFetchBeta >= 0 && c.XFetchBeta <= 1000): // NaN fails both
		return bad("XFETCH_BETA", "must be between 0 and 1000", c.XFetchBeta)
	case c.ReadLockWait < 0:
		return bad("READ_LOCK_WAIT", "must not be negative", c.ReadLockWait)
	case c.MaxClockSkew < time.Millisecond:
		return bad("MAX_CLOCK_SKEW", "must be at least 1ms", c.MaxClockSkew)
	case c.WriteThroughTimeout < time.Millisecond:
		return bad("WRITE_THROUGH_TIMEOUT", "must be at least 1ms", c.WriteThroughTimeout)
	}
	return nil
}
