package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrCannotCheck is returned by CheckDurability when Redis refuses CONFIG
// GET (managed services often rename or disable it).
var ErrCannotCheck = errors.New("cannot read the Redis configuration")

// Finding is a Redis setting that puts unflushed writes at risk.
type Finding struct {
	// Setting is the Redis configuration parameter; Value what it is set to.
	Setting string
	Value   string
	// Risk says what can be lost.
	Risk string
}

// String renders the finding for a log line.
func (f Finding) String() string { return f.Setting + "=" + f.Value + ": " + f.Risk }

// CheckDurability reads the Redis settings that decide whether an op
// acknowledged to a producer can be lost before it is flushed: an eviction
// policy that may evict keys without TTL (allkeys-*: unflushed values and the
// streams themselves), and no append-only file (with no RDB save points
// nothing survives a restart; with them, a crash loses every write since the
// last snapshot). volatile-* policies only evict keys with a TTL, which
// unflushed values and the streams never have, so they are fine.
func (q *Queue) CheckDurability(ctx context.Context) ([]Finding, error) {
	get := func(name string) (string, error) {
		m, err := q.rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			return "", fmt.Errorf("%w: CONFIG GET %s: %v", ErrCannotCheck, name, err)
		}
		v, ok := m[name]
		if !ok {
			return "", fmt.Errorf("%w: CONFIG GET %s: no such setting", ErrCannotCheck, name)
		}
		return v, nil
	}
	var found []Finding
	policy, err := get("maxmemory-policy")
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(policy, "allkeys-") {
		found = append(found, Finding{Setting: "maxmemory-policy", Value: policy,
			Risk: "Redis may evict unflushed values and the partition streams when memory is full; use noeviction or a volatile-* policy"})
	}
	aof, err := get("appendonly")
	if err != nil {
		return nil, err
	}
	save, err := get("save")
	if err != nil {
		return nil, err
	}
	switch {
	case aof == "yes":
	case strings.TrimSpace(save) == "":
		found = append(found, Finding{Setting: "appendonly", Value: aof + " (and save \"\")",
			Risk: "Redis keeps nothing on disk: a restart loses every unflushed write; set appendonly yes"})
	default:
		found = append(found, Finding{Setting: "appendonly", Value: aof + " (save \"" + save + "\")",
			Risk: "Redis keeps only RDB snapshots: a crash loses every write since the last one; set appendonly yes"})
	}
	return found, nil
}
