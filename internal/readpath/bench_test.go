package readpath

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkGet compares a cache hit through the read path with a plain
// go-redis GET of the same bytes, in one run.
func BenchmarkGet(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	e.row("1", `{"name": "a user with a name", "email": "user@example.com", "n": 1}`, 1)
	c := e.core(e.loader(nil), Options{Beta: 1})
	mustGet(b, c, "1")
	key := e.key("1")
	b.Run("readpath", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Get(ctx, "user", "1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis-GET", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.rdb.Get(ctx, key).Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetMany compares GetMany of 100 cached keys with one plain MGET
// of the same keys.
func BenchmarkGetMany(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	ids := make([]string, 100)
	keys := make([]string, 100)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		keys[i] = e.key(ids[i])
		e.put(ids[i], `{"name": "a user with a name", "email": "user@example.com", "n": `+ids[i]+`}`)
	}
	c := e.core(e.loader(nil), Options{})
	b.Run("readpath", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.GetMany(ctx, "user", ids); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis-MGET", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.rdb.MGet(ctx, keys...).Result(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetVsGET interleaves a read-path hit and a plain GET of the same
// bytes in every iteration, so load from other processes hits both alike,
// and reports their throughput ratio (1 is parity).
func BenchmarkGetVsGET(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	e.row("1", `{"name": "a user with a name", "email": "user@example.com", "n": 1}`, 1)
	c := e.core(e.loader(nil), Options{Beta: 1})
	mustGet(b, c, "1")
	key := e.key("1")
	var core, plain time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.Get(ctx, "user", "1"); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := e.rdb.Get(ctx, key).Bytes(); err != nil {
			b.Fatal(err)
		}
		core += t1.Sub(t0)
		plain += time.Since(t1)
	}
	b.ReportMetric(float64(core.Nanoseconds())/float64(b.N), "readpath-ns/get")
	b.ReportMetric(float64(plain.Nanoseconds())/float64(b.N), "redis-ns/get")
	b.ReportMetric(float64(plain)/float64(core), "throughput-ratio")
}

// BenchmarkGetManyVsMGET does the same for GetMany of 100 cached keys and
// one MGET of them.
func BenchmarkGetManyVsMGET(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	ids := make([]string, 100)
	keys := make([]string, 100)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		keys[i] = e.key(ids[i])
		e.put(ids[i], `{"name": "a user with a name", "email": "user@example.com", "n": `+ids[i]+`}`)
	}
	c := e.core(e.loader(nil), Options{})
	var core, plain time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.GetMany(ctx, "user", ids); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := e.rdb.MGet(ctx, keys...).Result(); err != nil {
			b.Fatal(err)
		}
		core += t1.Sub(t0)
		plain += time.Since(t1)
	}
	b.ReportMetric(float64(core.Nanoseconds())/float64(b.N), "readpath-ns/getmany")
	b.ReportMetric(float64(plain.Nanoseconds())/float64(b.N), "redis-ns/mget")
	b.ReportMetric(float64(plain)/float64(core), "throughput-ratio")
}
