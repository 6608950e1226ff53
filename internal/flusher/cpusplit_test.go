package flusher

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// cpuSample is where the machine's CPU time went up to one instant, in
// seconds: all of it (busy and idle, from /proc/stat), this process's own
// (the flusher, or the ceiling's writer), and Redis's (INFO cpu, of every
// node of a cluster); and the bytes of Redis's append-only files (INFO
// persistence), whose fsyncs Redis waits for.
type cpuSample struct {
	busy, idle, self, redis, aof float64
}

// clockTicks is the unit of /proc/stat, USER_HZ, which Linux fixes at 100.
const clockTicks = 100

func sampleCPU(tb testing.TB, rdb redis.UniversalClient) cpuSample {
	tb.Helper()
	var s cpuSample
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Skipf("no /proc/stat to split CPU time by: %v", err)
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseFloat(f, 64)
		switch i {
		case 3, 4: // idle, iowait
			s.idle += n / clockTicks
		case 0, 1, 2, 5, 6, 7: // user, nice, system, irq, softirq, steal
			s.busy += n / clockTicks
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	s.self = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	// Every node's, on a cluster and on a server with replicas: replicas
	// work too.
	var mu sync.Mutex
	add := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu", "persistence").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(l, ":")
			n, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "used_cpu_sys", "used_cpu_user":
				s.redis += n
			case "aof_current_size":
				s.aof += n
			}
		}
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachShard(context.Background(), add)
	case *redis.Client:
		if err = add(context.Background(), c); err == nil {
			err = forEachReplica(context.Background(), c, add)
		}
	default:
		tb.Fatalf("no CPU sample of a %T", rdb)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// forEachReplica calls fn with a client of each replica of the server of
// c, as INFO replication lists them.
func forEachReplica(ctx context.Context, c *redis.Client, fn func(context.Context, *redis.Client) error) error {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	for _, l := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(k, "slave") || !strings.Contains(v, "ip=") {
			continue
		}
		var ip, port string
		for _, kv := range strings.Split(v, ",") {
			if name, val, ok := strings.Cut(kv, "="); ok && name == "ip" {
				ip = val
			} else if ok && name == "port" {
				port = val
			}
		}
		r := redis.NewClient(&redis.Options{Addr: ip + ":" + port})
		err := fn(ctx, r)
		_ = r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// cpuSplit is the CPU time of a run, split as sampleCPU sees it.
type cpuSplit struct {
	self, redis, rest, idle, aof float64
}

func (s *cpuSplit) add(from, to cpuSample) {
	self, redis := to.self-from.self, to.redis-from.redis
	s.self += self
	s.redis += redis
	s.rest += max(0, to.busy-from.busy-self-redis)
	s.idle += to.idle - from.idle
	s.aof += max(0, to.aof-from.aof) // a rewrite shrinks the file
}

// report adds the split to the benchmark's figures, per op (µs of CPU): the
// flusher (or, for the ceiling, the writer) as self, Redis, and PostgreSQL
// with everything else on the machine as pg+rest; and the idle share of
// the machine's time; and the bytes appended to Redis's AOF per op.
func (s cpuSplit) report(b *testing.B, ops int64, self string) {
	per := func(sec float64) float64 { return sec * 1e6 / float64(max(ops, 1)) }
	b.ReportMetric(per(s.self), self+"-µs/op")
	b.ReportMetric(per(s.redis), "redis-µs/op")
	b.ReportMetric(per(s.rest), "pg+rest-µs/op")
	if total := s.self + s.redis + s.rest + s.idle; total > 0 {
		b.ReportMetric(100*s.idle/total, "idle-%")
	}
	b.ReportMetric(s.aof/float64(max(ops, 1)), "aof-B/op")
}
