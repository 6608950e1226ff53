package faults_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/testenv"
)

// trimmingSparesALaggingGroup: a running flusher trims on its ticker
// while a second group lags: the stream keeps every entry the lagging group
// has pending or undelivered, and shrinks to nothing once it catches up.
func trimmingSparesALaggingGroup(t *testing.T, e *env) {
	ctx := context.Background()
	e.writeKeys(t, ctx, 1, 200)
	streams := []string{e.q.Keys().Stream(0), e.q.Keys().Stream(1)}
	length := func() int64 {
		var n int64
		for _, s := range streams {
			l, err := e.rdb.XLen(ctx, s).Result()
			if err != nil {
				t.Fatal(err)
			}
			n += l
		}
		return n
	}
	// The lagging group acknowledges 30 entries per partition and holds 20
	// more pending; the rest it has not read.
	needed := int64(0)
	for _, s := range streams {
		if err := e.rdb.XGroupCreate(ctx, s, "audit", "0").Err(); err != nil {
			t.Fatal(err)
		}
		res, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "audit", Consumer: "a", Streams: []string{s, ">"}, Count: 50}).Result()
		if err != nil || len(res[0].Messages) != 50 {
			t.Fatalf("audit read: %v", err)
		}
		for _, m := range res[0].Messages[:30] {
			if err := e.rdb.XAck(ctx, s, "audit", m.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
		l, _ := e.rdb.XLen(ctx, s).Result()
		needed += l - 30
	}

	opt := e.options(t, "main")
	opt.TrimInterval = 20 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- flusher.New(e.q, e.sink, opt).Run(runCtx) }()
	e.waitIdle(t, 20*time.Second)
	testenv.WaitFor(t, 10*time.Second, "the flusher to trim what both groups acknowledged", func() bool { return length() <= needed })
	if l := length(); l != needed {
		t.Fatalf("stream holds %d entries, want the %d the lagging group needs", l, needed)
	}

	// Everything the lagging group has not acknowledged is still there.
	var got int64
	for _, s := range streams {
		for _, id := range []string{"0", ">"} {
			res, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "audit", Consumer: "a", Streams: []string{s, id}, Count: 1000, Block: -1}).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			for _, r := range res {
				for _, m := range r.Messages {
					got++
					if err := e.rdb.XAck(ctx, s, "audit", m.ID).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if got != needed {
		t.Fatalf("lagging group read %d entries after trimming, want %d", got, needed)
	}
	testenv.WaitFor(t, 10*time.Second, "the stream to shrink once the lagging group caught up", func() bool { return length() == 0 })
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	e.checkConverged(t, 0)
}

// TestStrictRefusesUnsafeRedis: against a Redis that keeps nothing on disk
// and may evict any key, the flusher warns, and refuses to start with
// WB_STRICT=true.
func TestStrictRefusesUnsafeRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer rdb.Close()
	for _, kv := range [][2]string{{"maxmemory-policy", "allkeys-lru"}, {"appendonly", "no"}} {
		if err := rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	pool, schema := testenv.Postgres(t)
	e := newEnv(t, rdb, srv.URL(), "s", pool, testenv.PostgresURL(), schema)
	flusherBin, writerBin := testenv.Commands(t)

	strict := testenv.Start(t, e.processEnv("s", "WB_STRICT=true"), flusherBin, "drain")
	if code := strict.Wait(t, 20*time.Second); code != 1 || !strings.Contains(strict.Out.String(), "WB_STRICT") {
		t.Fatalf("strict flusher: exit %d, output:\n%s", code, strict.Out.String())
	}
	w := testenv.Start(t, e.processEnv("s", "WB_STRICT=true"), writerBin, "put", "user", "1", `{"n":1}`)
	if code := w.Wait(t, 20*time.Second); code != 1 {
		t.Fatalf("strict writer: exit %d, output:\n%s", code, w.Out.String())
	}
	if err := e.put(ctx, "1", 1); err != nil {
		t.Fatal(err)
	}
	lax := testenv.Start(t, e.processEnv("s"), flusherBin, "drain")
	if code := lax.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("flusher without WB_STRICT: exit %d, output:\n%s", code, lax.Out.String())
	}
	for _, setting := range []string{"maxmemory-policy", "appendonly"} {
		if !strings.Contains(lax.Out.String(), `"setting":"`+setting+`"`) {
			t.Errorf("no warning about %s:\n%s", setting, lax.Out.String())
		}
	}
	e.checkConverged(t, 0)
}
