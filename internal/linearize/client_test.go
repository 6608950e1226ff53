package linearize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/startup"
)

// clientEnv carries a clientSpec, as JSON, to a client process.
const clientEnv = "WB_LINEARIZE_CLIENT"

// entity is the one entity every round uses; its table is <schema>.users.
const entity = "user"

// clientSpec is what one client process does.
type clientSpec struct {
	Process     int // numbers the process; client ids are Process*Goroutines+g
	Goroutines  int
	Namespace   string
	Schema      string
	RedisURL    string
	PostgresURL string
	Partitions  int
	ReadLock    bool
	Keys        []string
	Ops         []string // names from opWeights
	Seed        uint64
	Duration    time.Duration
	Out         string // the file of JSON lines
}

// opWeights are the ops a client may run, with how often it picks each.
var opWeights = map[string]int{
	"put":              20,
	"delete":           5,
	"putthrough":       8,
	"deletethrough":    3,
	"get":              20,
	"getmany":          8,
	"refresh":          5,
	"aside":            20,
	"invalidate":       4,
	"invalidateentity": 1,
}

// TestLinearizeClient is the client process: a round re-executes the test
// binary with only this test and a clientSpec in $WB_LINEARIZE_CLIENT.
func TestLinearizeClient(t *testing.T) {
	raw := os.Getenv(clientEnv)
	if raw == "" {
		t.Skip("a client process of the linearizability rounds; run by them")
	}
	var spec clientSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatalf("%s: %v", clientEnv, err)
	}
	c, err := newClient(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.rec.log(event{Ev: "start", Client: spec.Process, BrokenFill: brokenFill}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(spec.Duration)
	var wg sync.WaitGroup
	for g := range spec.Goroutines {
		wg.Go(func() { c.run(g, until) })
	}
	wg.Wait()
	st, _ := json.Marshal(c.r.Stats())
	fmt.Printf("stats %s\n", st)
}

// client is one process's writer, reader and read-aside face, all through
// the public API.
type client struct {
	spec  clientSpec
	rdb   redis.UniversalClient
	pool  *pgxpool.Pool
	w     *writebehind.Writer
	r     *writebehind.Reader
	aside *writebehind.ReadAside
	table string // the entity's table, quoted, for the read-aside loads
	rec   *recorder
	ops   []string // the enabled ops, each repeated by its weight
}

func newClient(ctx context.Context, spec clientSpec) (*client, error) {
	target, err := startup.ParseRedisURL(spec.RedisURL)
	if err != nil {
		return nil, err
	}
	c := &client{spec: spec, rdb: target.Client(0), table: pgx.Identifier{spec.Schema, "users"}.Sanitize()}
	if c.pool, err = pgxpool.New(ctx, spec.PostgresURL); err != nil {
		return nil, err
	}
	store := writebehind.Store{Namespace: spec.Namespace, Partitions: spec.Partitions, Entities: writebehind.Entities{entity: spec.Schema + ".users"}}
	wcfg, rcfg := writebehind.DefaultWriterConfig(), writebehind.DefaultReaderConfig()
	wcfg.Store, rcfg.Store = store, store
	// Tiny TTLs, so flushed values and "not found" answers expire while
	// reads are in flight: the windows where stale fills and early
	// refreshes happen.
	wcfg.CleanTTL, rcfg.CleanTTL = 3*time.Millisecond, 3*time.Millisecond
	rcfg.NegativeTTL = 5 * time.Millisecond
	rcfg.XFetchBeta = 1
	rcfg.ReadLock = spec.ReadLock
	if c.w, err = writebehind.NewWriter(ctx, c.rdb, wcfg, writebehind.WithPostgres(c.pool)); err != nil {
		return nil, err
	}
	if c.r, err = writebehind.NewReader(ctx, c.rdb, c.pool, rcfg); err != nil {
		return nil, err
	}
	c.aside = c.r.Aside()
	for _, name := range spec.Ops {
		n, ok := opWeights[name]
		if !ok {
			return nil, fmt.Errorf("unknown op %q", name)
		}
		for range n {
			c.ops = append(c.ops, name)
		}
	}
	if len(c.ops) == 0 {
		return nil, errors.New("no op enabled")
	}
	if c.rec, err = newRecorder(spec.Out); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *client) close() {
	_ = c.rec.Close()
	c.pool.Close()
	_ = c.rdb.Close()
}

// run is one goroutine: random ops on random keys until the deadline.
func (c *client) run(g int, until time.Time) {
	rng := rand.New(rand.NewPCG(c.spec.Seed, uint64(g)))
	id := c.spec.Process*c.spec.Goroutines + g
	for n := 0; time.Now().Before(until); n++ {
		key := c.spec.Keys[rng.IntN(len(c.spec.Keys))]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.do(ctx, rng, id, c.ops[rng.IntN(len(c.ops))], key, fmt.Sprintf("p%d.%d-%d", c.spec.Process, g, n))
		// Think time: back to back writes keep every key unflushed, and
		// reads would never miss; a pause lets keys be flushed and expire.
		pause(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
		cancel()
	}
}

// do runs one op and logs it. value is unique to this op, for a put.
func (c *client) do(ctx context.Context, rng *rand.Rand, id int, name, key, value string) {
	doc := []byte(fmt.Sprintf(`{"w":%q}`, value))
	switch name {
	case "put":
		c.write(id, "Put", key, value, func() error { _, err := c.w.Put(ctx, entity, key, doc); return err })
	case "delete":
		c.write(id, "Delete", key, notFound, func() error { _, err := c.w.Delete(ctx, entity, key); return err })
	case "putthrough":
		c.write(id, "PutThrough", key, value, func() error { _, err := c.w.PutThrough(ctx, entity, key, doc); return err })
	case "deletethrough":
		c.write(id, "DeleteThrough", key, notFound, func() error { _, err := c.w.DeleteThrough(ctx, entity, key); return err })
	case "get":
		c.read(id, "Get", []string{key}, func() ([]writebehind.Item, error) {
			it, err := c.r.Get(ctx, entity, key)
			return []writebehind.Item{it}, err
		})
	case "getmany":
		perm := rng.Perm(len(c.spec.Keys))
		ids := make([]string, min(len(perm), 2+rng.IntN(2)))
		for i := range ids {
			ids[i] = c.spec.Keys[perm[i]]
		}
		c.read(id, "GetMany", ids, func() ([]writebehind.Item, error) { return c.r.GetMany(ctx, entity, ids) })
	case "refresh":
		c.read(id, "Refresh", []string{key}, func() ([]writebehind.Item, error) {
			it, err := c.r.Refresh(ctx, entity, key)
			return []writebehind.Item{it}, err
		})
	case "aside":
		c.read(id, "Aside", []string{key}, func() ([]writebehind.Item, error) {
			it, err := c.asideGet(ctx, rng, key)
			return []writebehind.Item{it}, err
		})
	case "invalidate":
		_ = c.r.Invalidate(ctx, entity, key)
	case "invalidateentity":
		_ = c.r.InvalidateEntity(ctx, entity)
	}
}

// write logs the call, runs fn, and logs its return: a kill in between
// leaves a write of unknown outcome.
func (c *client) write(id int, method, key, value string, fn func() error) {
	e := event{Ev: "call", Seq: c.rec.next(), Client: id, Key: key, Kind: kindWrite, Method: method, Value: value,
		Call: time.Now().UnixNano()}
	must(c.rec.log(e))
	err := fn()
	e.Ev, e.Return = "return", time.Now().UnixNano()
	if err != nil {
		e.Err = err.Error()
	}
	must(c.rec.log(e))
}

// read runs fn and logs one read per key, all with the call's interval.
func (c *client) read(id int, method string, keys []string, fn func() ([]writebehind.Item, error)) {
	call := time.Now().UnixNano()
	items, err := fn()
	ret := time.Now().UnixNano()
	for i, key := range keys {
		e := event{Ev: "return", Seq: c.rec.next(), Client: id, Key: key, Kind: kindRead, Method: method, Call: call, Return: ret}
		if err != nil {
			e.Err = err.Error()
		} else {
			e.Value = valueOf(items[i])
		}
		must(c.rec.log(e))
	}
}

// asideGet is the read-aside read of an app: on a miss, load the row
// itself and fill; a fill that reports a miss renewed the lease, so load
// and fill again.
func (c *client) asideGet(ctx context.Context, rng *rand.Rand, key string) (writebehind.Item, error) {
	it, l, err := c.aside.Get(ctx, entity, key)
	for tries := 0; errors.Is(err, writebehind.ErrCacheMiss); tries++ {
		if tries == 10 {
			return it, errors.New("read-aside: still a miss after 10 fills")
		}
		loaded, lerr := c.load(ctx, key)
		if lerr != nil {
			return it, lerr
		}
		// A slow load now and then: it widens the window in which a
		// write can land, be flushed and expire before the fill.
		if rng.IntN(3) == 0 {
			pause(ctx, time.Duration(1+rng.IntN(4))*time.Millisecond)
		}
		it, err = c.aside.Fill(ctx, l, loaded)
	}
	return it, err
}

// load reads the row as an app would: not found when there is no row or
// it is a tombstone.
func (c *client) load(ctx context.Context, key string) (writebehind.Item, error) {
	it := writebehind.Item{Entity: entity, ID: key}
	var data []byte
	var deleted bool
	err := c.pool.QueryRow(ctx, `SELECT data, version, deleted FROM `+c.table+` WHERE id = $1`, key).Scan(&data, &it.Version, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return it, nil
	}
	if err != nil {
		return it, err
	}
	if !deleted {
		it.Found, it.Data = true, data
	}
	return it, nil
}

// valueOf is the register value of a read: the "w" of the document, or
// notFound.
func valueOf(it writebehind.Item) string {
	if !it.Found {
		return notFound
	}
	var d struct {
		W string `json:"w"`
	}
	if err := json.Unmarshal(it.Data, &d); err != nil || d.W == "" {
		return "unexpected document " + string(it.Data)
	}
	return d.W
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// must stops the process when a line cannot be logged: a history with a
// hole in it would be judged wrongly.
func must(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "linearize client: %v\n", err)
		os.Exit(3)
	}
}
