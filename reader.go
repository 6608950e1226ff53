package writebehind

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// Reader serves documents from the cache, which holds every unflushed write,
// and from PostgreSQL when the cache has nothing for a key. It is safe for
// concurrent use; the clients stay the caller's.
type Reader struct {
	cfg  Config
	q    *queue.Queue
	sink *sink.Sink
}

// NewReader returns a reader over Redis and PostgreSQL.
func NewReader(client redis.UniversalClient, pool *pgxpool.Pool, cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := sink.New(pool, cfg.Entities)
	if err != nil {
		return nil, err
	}
	return &Reader{cfg: cfg, q: queue.New(client, cfg.Namespace, cfg.Partitions), sink: s}, nil
}

// Item is a document as read: Found is false for a key never written or
// deleted.
type Item struct {
	Entity  string          `json:"entity"`
	ID      string          `json:"id"`
	Found   bool            `json:"found"`
	Data    json.RawMessage `json:"data,omitempty"`
	Version int64           `json:"version,omitempty"`
}

// Get returns the document entity/id. A cached value, clean or not yet
// flushed, wins; a cached tombstone means not found; otherwise the row in
// PostgreSQL answers.
func (r *Reader) Get(ctx context.Context, entity, id string) (Item, error) {
	it := Item{Entity: entity, ID: id}
	if _, ok := r.cfg.Entities[entity]; !ok {
		return it, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
	}
	c, cached, err := r.q.Cached(ctx, entity, id)
	if err != nil {
		return it, err
	}
	if cached {
		it.Found, it.Version = c.Found(), c.Version
		if it.Found {
			it.Data = c.Data
		}
		return it, nil
	}
	row, found, err := r.sink.Load(ctx, entity, id)
	if err != nil {
		return it, err
	}
	if found {
		it.Found, it.Data, it.Version = true, row.Data, row.Version
	}
	return it, nil
}
