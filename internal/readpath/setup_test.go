package readpath

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

const partitions = 2

// env is one test's corner of Redis and PostgreSQL.
type env struct {
	t      testing.TB
	rdb    redis.UniversalClient
	ns     string
	q      *queue.Queue
	pool   *pgxpool.Pool
	schema string
	sink   *sink.Sink
	// loads counts calls of the loader made by loader().
	loads atomic.Int64
}

func setup(t testing.TB) *env {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	return setupOn(t, rdb, ns)
}

// setupOn is setup on the Redis of rdb (a single server or a cluster),
// under namespace ns.
func setupOn(t testing.TB, rdb redis.UniversalClient, ns string) *env {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	s, err := sink.New(pool, map[string]string{"user": schema + ".users"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, rdb: rdb, ns: ns, q: queue.New(rdb, ns, partitions), pool: pool, schema: schema, sink: s}
}

// loader reads the table, counting calls; before, if set, runs first (a
// hook where a test makes things happen during the load).
func (e *env) loader(before func(ids []string) error) LoadFunc {
	return func(ctx context.Context, entity string, ids []string) ([]Value, error) {
		e.loads.Add(1)
		if before != nil {
			if err := before(ids); err != nil {
				return nil, err
			}
		}
		rows, err := e.sink.LoadMany(ctx, entity, ids)
		if err != nil {
			return nil, err
		}
		out := make([]Value, len(ids))
		for i, id := range ids {
			if r, ok := rows[id]; ok {
				out[i] = Value{Found: true, Data: r.Data, Version: r.Version}
			}
		}
		return out, nil
	}
}

func (e *env) core(load LoadFunc, opt Options) *Core {
	if opt.TTL == nil {
		opt.TTL = func(string) time.Duration { return time.Minute }
	}
	if opt.NegativeTTL == 0 {
		opt.NegativeTTL = time.Minute
	}
	opt.Log = zerolog.Nop()
	return New(e.q.Cells(), []string{"user"}, load, opt)
}

// put writes through the write-behind path, as Writer.Put does.
func (e *env) put(id, data string) int64 {
	e.t.Helper()
	v, errs := e.q.Write(context.Background(), []op.Op{{Kind: op.Put, Entity: "user", ID: id, Data: []byte(data)}}, time.Now())
	if errs[0] != nil {
		e.t.Fatal(errs[0])
	}
	return v[0]
}

func (e *env) del(id string) int64 {
	e.t.Helper()
	v, errs := e.q.Write(context.Background(), []op.Op{{Kind: op.Delete, Entity: "user", ID: id}}, time.Now())
	if errs[0] != nil {
		e.t.Fatal(errs[0])
	}
	return v[0]
}

// row writes a row straight into the table, as another system would.
func (e *env) row(id, data string, version int64) {
	e.t.Helper()
	if _, err := e.sink.Write(context.Background(), []op.Op{{Kind: op.Put, Entity: "user", ID: id, Data: []byte(data), Version: version}}); err != nil {
		e.t.Fatal(err)
	}
}

// drain flushes everything written so far, marking values clean with ttl.
func (e *env) drain(ttl time.Duration) {
	e.t.Helper()
	f := flusher.New(e.q, e.sink, flusher.Options{
		Group: "flushers", Consumer: "c1", BatchSize: 100, ClaimMinIdle: time.Second,
		ClaimInterval: time.Second, CleanTTL: ttl, Block: 20 * time.Millisecond, Log: zerolog.Nop(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := f.Drain(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// raw returns the cached value as stored ("" when absent).
func (e *env) raw(id string) string {
	e.t.Helper()
	k := e.q.Keys().Value(e.q.Partition("user", id), "user", id)
	s, err := e.rdb.Get(context.Background(), k).Result()
	if err == redis.Nil {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) key(id string) string { return e.q.Keys().Value(e.q.Partition("user", id), "user", id) }

// tableData returns the row's data, or "deleted"/"absent".
func (e *env) tableData(id string) string {
	e.t.Helper()
	var data string
	var deleted bool
	err := e.pool.QueryRow(context.Background(), `SELECT data::text, deleted FROM `+e.schema+`.users WHERE id = $1`, id).Scan(&data, &deleted)
	if err != nil {
		return "absent"
	}
	if deleted {
		return "deleted"
	}
	return data
}

func mustGet(t testing.TB, c *Core, id string) Value {
	t.Helper()
	v, err := c.Get(context.Background(), "user", id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// overwrite writes n=2 to key 1 (or, with del, deletes it), flushes it and
// lets its clean value expire: the write has returned and left the cache.
func (e *env) overwrite(del bool) {
	e.t.Helper()
	if del {
		e.del("1")
	} else {
		e.put("1", `{"n": 2}`)
	}
	e.drain(time.Hour)
	if err := e.rdb.Del(context.Background(), e.key("1")).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// getAsync runs a Get of user/id and hands its value over when it returns.
func getAsync(t *testing.T, c *Core, id string) <-chan Value {
	got := make(chan Value, 1)
	go func() {
		v, err := c.Get(context.Background(), "user", id)
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	return got
}
