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
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/writebehind/writebehind/internal/config"
	"github.com/writebehind/writebehind/internal/mapping"
)

// Store is where the data lives: the Redis keys and the tables. Every
// component of one deployment must be given the same.
type Store struct {
	// Namespace prefixes every Redis key, so deployments can share a Redis.
	Namespace string `envconfig:"NAMESPACE" default:"wb" desc:"prefix of every Redis key"`
	// Entities maps entity names to document tables ("table" or
	// "schema.table"). It has no default when EntitiesFile is set.
	Entities Entities `envconfig:"ENTITIES" default:"user=users,session=sessions" desc:"entity=table pairs, comma-separated" nodefaultwith:"ENTITIES_FILE"`
	// EntitiesFile describes entities mapped onto existing tables.
	EntitiesFile EntitiesFile `envconfig:"ENTITIES_FILE" desc:"YAML file mapping entities onto existing tables (README: Existing tables)"`
	// Partitions is the number of streams; fixed for the life of the data.
	Partitions int `envconfig:"PARTITIONS" default:"16" desc:"number of partition streams (fixed once data exists)"`
}

// WriterConfig is what a Writer reads. The zero value is not usable: start
// from DefaultWriterConfig, WithDefaults or LoadWriterConfig.
type WriterConfig struct {
	Store
	// MaxIDBytes bounds an id.
	MaxIDBytes int `envconfig:"MAX_ID_BYTES" default:"256" desc:"longest id accepted, in bytes"`
	// MaxValueBytes bounds a value.
	MaxValueBytes int `envconfig:"MAX_VALUE_BYTES" default:"1048576" desc:"largest value accepted, in bytes"`
	// CleanTTLs are given to the values write-throughs cache.
	CleanTTLs
	// MaxBacklog is the most entries a partition stream may hold before
	// writes are refused with ErrBackpressure; 0 disables the check.
	MaxBacklog int64 `envconfig:"MAX_BACKLOG" default:"1000000" desc:"entries per partition stream before writes are refused (0: no limit)"`
	// WaitReplicas is how many replicas must acknowledge each write before
	// it returns; 0 does not wait.
	WaitReplicas int `envconfig:"WAIT_REPLICAS" default:"0" desc:"replicas that must acknowledge each write (0: none)"`
	// WaitTimeout bounds the wait for replicas.
	WaitTimeout time.Duration `envconfig:"WAIT_TIMEOUT" default:"1s" desc:"how long a write waits for WB_WAIT_REPLICAS"`
	// MaxClockSkew is how far ahead of the clocks of Redis and of the
	// flushers a version may be: writes beyond it are refused, stream
	// entries beyond it dead-lettered, since such a version would win over
	// every later write of its key.
	MaxClockSkew time.Duration `envconfig:"MAX_CLOCK_SKEW" default:"1m" desc:"how far ahead of Redis's and the flushers' clocks a version may be"`
	// WriteThroughTimeout bounds a PutThrough or DeleteThrough's commit:
	// reads of the key wait for the write that long at most, then take its
	// writer for dead.
	WriteThroughTimeout time.Duration `envconfig:"WRITE_THROUGH_TIMEOUT" default:"5s" desc:"longest commit of a write-through; reads of its key wait for it"`
}

// ReaderConfig is what a Reader or ReadAside reads. The zero value is not
// usable: start from DefaultReaderConfig, WithDefaults or LoadReaderConfig.
type ReaderConfig struct {
	Store
	// MaxIDBytes bounds an id.
	MaxIDBytes int `envconfig:"MAX_ID_BYTES" default:"256" desc:"longest id accepted, in bytes"`
	// CleanTTLs are given to the values fills cache.
	CleanTTLs
	// NegativeTTL is how long a "not found" stays cached.
	NegativeTTL time.Duration `envconfig:"NEGATIVE_TTL" default:"30s" desc:"TTL of cached not-found answers"`
	// XFetchBeta scales early refresh of clean values (XFetch); 0 disables it.
	XFetchBeta float64 `envconfig:"XFETCH_BETA" default:"1" desc:"early refresh eagerness (0: off)"`
	// ReadLock makes readers of other processes wait for the one loading a
	// key instead of loading it too.
	ReadLock bool `envconfig:"READ_LOCK" default:"false" desc:"wait for another process loading the same key"`
	// ReadLockWait bounds that wait; then the reader loads itself.
	ReadLockWait time.Duration `envconfig:"READ_LOCK_WAIT" default:"200ms" desc:"longest wait for another process's load"`
}

// CleanTTLs are the TTLs of cached values PostgreSQL has: flushed, filled or
// written through.
type CleanTTLs struct {
	// CleanTTL is the TTL of flushed cached values; 0 keeps them.
	CleanTTL time.Duration `envconfig:"CLEAN_TTL" default:"10m" desc:"TTL of cached values once flushed (0: keep)"`
	// EntityTTLs overrides CleanTTL per entity, for fills and flushes.
	EntityTTLs EntityTTLs `envconfig:"ENTITY_TTLS" desc:"entity=duration pairs overriding WB_CLEAN_TTL, comma-separated"`
}

// TTL returns the clean TTL of entity: its own, or CleanTTL.
func (t CleanTTLs) TTL(entity string) time.Duration {
	if d, ok := t.EntityTTLs[entity]; ok {
		return d
	}
	return t.CleanTTL
}

// Validate checks the rules of the TTLs of entities (Store.AllEntities).
func (t CleanTTLs) Validate(entities Entities) error {
	if t.CleanTTL < 0 || !config.WholeMillis(t.CleanTTL) {
		return config.Bad("CLEAN_TTL", "must be 0 (keep) or a whole number of milliseconds", t.CleanTTL)
	}
	for _, name := range slices.Sorted(maps.Keys(t.EntityTTLs)) {
		if _, ok := entities[name]; !ok {
			return config.Bad("ENTITY_TTLS", "names an entity not in WB_ENTITIES", fmt.Sprintf("%q", name))
		}
		if t.EntityTTLs[name] < 0 || !config.WholeMillis(t.EntityTTLs[name]) {
			return config.Bad("ENTITY_TTLS", "entity "+name+": must be 0 (keep) or a whole number of milliseconds", t.EntityTTLs[name])
		}
	}
	return nil
}

// EntityTTLs maps entity names to clean TTLs. It decodes from
// "user=5m,session=30s".
type EntityTTLs map[string]time.Duration

// Decode implements envconfig.Decoder.
func (e *EntityTTLs) Decode(s string) error {
	return decodePairs((*map[string]time.Duration)(e), s, "entity=duration", func(name, d string) (time.Duration, error) {
		ttl, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return 0, config.ListError(fmt.Sprintf("entity %q: %q is not a duration", name, d))
		}
		return ttl, nil
	})
}

// Entities maps entity names to table names. It decodes from
// "user=users,session=app.sessions".
type Entities map[string]string

// Decode implements envconfig.Decoder.
func (e *Entities) Decode(s string) error {
	return decodePairs((*map[string]string)(e), s, "entity=table", func(_, table string) (string, error) { return strings.TrimSpace(table), nil })
}

// decodePairs decodes into dst comma-separated pairs of the form
// "entity=value", each entity once, with value parsing the part after "=".
func decodePairs[V any](dst *map[string]V, s, form string, value func(entity, v string) (V, error)) error {
	m := map[string]V{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, v, ok := strings.Cut(pair, "=")
		if !ok {
			return config.ListError(fmt.Sprintf("%q is not %s", pair, form))
		}
		name = strings.TrimSpace(name)
		if _, dup := m[name]; dup {
			return config.ListError(fmt.Sprintf("entity %q appears twice", name))
		}
		var err error
		if m[name], err = value(name, v); err != nil {
			return err
		}
	}
	*dst = m
	return nil
}

// EntitiesFile is the YAML file of WB_ENTITIES_FILE, read: entities mapped
// onto the columns, keys and child rows of tables that may already exist.
// The zero value names no file.
type EntitiesFile struct {
	// Path is where the file was read from.
	Path string
	// mapped is what it describes.
	mapped mapping.Entities
}

// ReadEntitiesFile reads and checks the entities file at path.
func ReadEntitiesFile(path string) (EntitiesFile, error) {
	var f EntitiesFile
	if err := f.Decode(path); err != nil {
		return EntitiesFile{}, fmt.Errorf("%w: WB_ENTITIES_FILE: %w", config.ErrInvalid, err)
	}
	return f, nil
}

// Decode implements envconfig.Decoder: it reads the file at path; an empty
// path names no file.
func (f *EntitiesFile) Decode(path string) error {
	path = strings.TrimSpace(path)
	if path == "" {
		*f = EntitiesFile{}
		return nil
	}
	m, err := mapping.ReadFile(path)
	if err != nil {
		return config.ListError(err.Error())
	}
	*f = EntitiesFile{Path: path, mapped: m}
	return nil
}

// String returns the file's path.
func (f EntitiesFile) String() string { return f.Path }

// The commands and the internal packages read the entities of a file
// through mapping.Of: the public API names no internal type.
func init() {
	mapping.Of = func(file any) mapping.Entities { return file.(EntitiesFile).mapped }
}

// AllEntities returns every entity of s, of WB_ENTITIES and of
// WB_ENTITIES_FILE, with its table.
func (s Store) AllEntities() Entities {
	all := make(Entities, len(s.Entities)+len(s.EntitiesFile.mapped))
	maps.Copy(all, s.Entities)
	for name, e := range s.EntitiesFile.mapped {
		all[name] = e.Table.Sanitize()
	}
	return all
}

// has reports whether s has the entity name, of either kind.
func (s Store) has(name string) bool {
	_, doc := s.Entities[name]
	_, mapped := s.EntitiesFile.mapped[name]
	return doc || mapped
}

// String renders the map the way Decode reads it, sorted by entity.
func (e Entities) String() string {
	pairs := make([]string, 0, len(e))
	for _, n := range slices.Sorted(maps.Keys(e)) {
		pairs = append(pairs, n+"="+e[n])
	}
	return strings.Join(pairs, ",")
}

// DefaultWriterConfig returns the Writer's configuration with every
// default applied, as LoadWriterConfig reads it with no WB_ variable set.
func DefaultWriterConfig() WriterConfig { return config.Defaults[WriterConfig]() }

// DefaultReaderConfig returns the Reader's configuration with every default
// applied, as LoadReaderConfig reads it with no WB_ variable set.
func DefaultReaderConfig() ReaderConfig { return config.Defaults[ReaderConfig]() }

// LoadWriterConfig reads the Writer's configuration from WB_ environment
// variables and validates it. Its errors wrap ErrInvalidConfig and name the
// variable.
func LoadWriterConfig() (WriterConfig, error) { return config.Load[WriterConfig]() }

// LoadReaderConfig reads the configuration of a Reader or ReadAside from WB_
// environment variables and validates it. Its errors wrap ErrInvalidConfig
// and name the variable.
func LoadReaderConfig() (ReaderConfig, error) { return config.Load[ReaderConfig]() }

// WithDefaults returns s with its zero fields set to their defaults.
func (s Store) WithDefaults() Store { return config.WithDefaults(s) }

// WithDefaults returns c with its zero fields set to their defaults, but for
// those 0 means something for: a zero MaxBacklog or CleanTTL stays.
func (c WriterConfig) WithDefaults() WriterConfig {
	return config.WithDefaults(c, "MaxBacklog", "CleanTTL")
}

// WithDefaults returns c with its zero fields set to their defaults, but for
// those 0 means something for: a zero CleanTTL, NegativeTTL, XFetchBeta or
// ReadLockWait stays.
func (c ReaderConfig) WithDefaults() ReaderConfig {
	return config.WithDefaults(c, "CleanTTL", "NegativeTTL", "XFetchBeta", "ReadLockWait")
}

var (
	entityName    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	namespaceName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Validate checks every rule of s; the error names the first variable that
// breaks one.
func (s Store) Validate() error {
	switch {
	case !namespaceName.MatchString(s.Namespace):
		return config.Bad("NAMESPACE", "must be 1 to 64 of A-Z a-z 0-9 _ . -", fmt.Sprintf("%q", s.Namespace))
	case len(s.Entities) == 0 && len(s.EntitiesFile.mapped) == 0:
		return config.Bad("ENTITIES", "must name at least one entity=table (or WB_ENTITIES_FILE an entity)", `""`)
	case s.EntitiesFile.Path != "" && s.EntitiesFile.mapped == nil:
		return config.Bad("ENTITIES_FILE", "was not read: set it with ReadEntitiesFile", fmt.Sprintf("%q", s.EntitiesFile.Path))
	case s.Partitions < 1 || s.Partitions > 1024:
		return config.Bad("PARTITIONS", "must be between 1 and 1024", s.Partitions)
	}
	// Two entities on one table would overwrite and delete each other's
	// rows; an unqualified name is the one in schema public.
	owner := make(map[string]string, len(s.Entities))
	for _, name := range slices.Sorted(maps.Keys(s.Entities)) {
		if !entityName.MatchString(name) {
			return config.Bad("ENTITIES", "entity names must match [a-z][a-z0-9_]*", fmt.Sprintf("%q", name))
		}
		table, err := mapping.ParseTable(s.Entities[name])
		if err != nil {
			return config.Bad("ENTITIES", "entity "+name+": "+err.Error(), fmt.Sprintf("%q", s.Entities[name]))
		}
		q := mapping.Qualified(table)
		if other, dup := owner[q]; dup {
			return config.Bad("ENTITIES", "entities "+other+" and "+name+" share table "+q, fmt.Sprintf("%q", s.Entities.String()))
		}
		owner[q] = name
	}
	mapped := s.EntitiesFile.mapped
	for _, name := range mapped.Names() {
		got := fmt.Sprintf("%q", s.EntitiesFile.Path)
		if !entityName.MatchString(name) {
			return config.Bad("ENTITIES_FILE", fmt.Sprintf("entity names must match [a-z][a-z0-9_]*, not %q", name), got)
		}
		if _, dup := s.Entities[name]; dup {
			return config.Bad("ENTITIES_FILE", "entity "+name+" is in WB_ENTITIES too", got)
		}
		for _, t := range mapped[name].Tables() {
			if other, dup := owner[mapping.Qualified(t)]; dup {
				return config.Bad("ENTITIES_FILE", "entity "+name+" uses table "+mapping.Qualified(t)+" of WB_ENTITIES's "+other, got)
			}
		}
	}
	return nil
}

// Validate checks every rule; the error names the first variable that breaks
// one.
func (c WriterConfig) Validate() error {
	switch err := config.First(c.Store.Validate(), config.MaxIDBytes(c.MaxIDBytes), config.MaxValueBytes(c.MaxValueBytes), c.CleanTTLs.Validate(c.AllEntities())); {
	case err != nil:
		return err
	case c.MaxBacklog < 0:
		return config.Bad("MAX_BACKLOG", "must not be negative", c.MaxBacklog)
	case c.WaitReplicas < 0:
		return config.Bad("WAIT_REPLICAS", "must not be negative", c.WaitReplicas)
	case c.WaitReplicas > 0 && c.WaitTimeout < time.Millisecond:
		return config.Bad("WAIT_TIMEOUT", "must be at least 1ms when WB_WAIT_REPLICAS is set", c.WaitTimeout)
	case c.MaxClockSkew < time.Millisecond:
		return config.Bad("MAX_CLOCK_SKEW", "must be at least 1ms", c.MaxClockSkew)
	case c.WriteThroughTimeout < time.Millisecond:
		return config.Bad("WRITE_THROUGH_TIMEOUT", "must be at least 1ms", c.WriteThroughTimeout)
	}
	return nil
}

// Validate checks every rule; the error names the first variable that breaks
// one.
func (c ReaderConfig) Validate() error {
	switch err := config.First(c.Store.Validate(), config.MaxIDBytes(c.MaxIDBytes), c.CleanTTLs.Validate(c.AllEntities())); {
	case err != nil:
		return err
	case c.NegativeTTL < 0 || !config.WholeMillis(c.NegativeTTL):
		return config.Bad("NEGATIVE_TTL", "must be 0 (none) or a whole number of milliseconds", c.NegativeTTL)
	case !(c.XFetchBeta >= 0 && c.XFetchBeta <= 1000): // NaN fails both
		return config.Bad("XFETCH_BETA", "must be between 0 and 1000", c.XFetchBeta)
	case c.ReadLockWait < 0:
		return config.Bad("READ_LOCK_WAIT", "must not be negative", c.ReadLockWait)
	}
	return nil
}
