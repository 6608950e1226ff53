package writebehind

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/testenv"
)

func newTestWriter(t *testing.T) (*Writer, WriterConfig, *redis.Client) {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	cfg := DefaultWriterConfig()
	cfg.Namespace = ns
	cfg.Partitions = 2
	cfg.MaxIDBytes = 8
	cfg.MaxValueBytes = 32
	w, err := NewWriter(context.Background(), rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, cfg, rdb
}

func TestWriterRejectsBadInputAndWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, cfg, rdb := newTestWriter(t)
	tests := []struct {
		name   string
		entity string
		id     string
		value  string
		want   error
	}{
		{"unknown entity", "ghost", "1", `{}`, ErrUnknownEntity},
		{"empty id", "user", "", `{}`, ErrInvalidID},
		{"long id", "user", "123456789", `{}`, ErrInvalidID},
		{"id not UTF-8", "user", "\xff", `{}`, ErrInvalidID},
		{"id with NUL", "user", "a\x00b", `{}`, ErrInvalidID},
		{"not JSON", "user", "1", `{nope}`, ErrInvalidValue},
		{"JSON array", "user", "1", `[1]`, ErrInvalidValue},
		{"JSON string", "user", "1", `"x"`, ErrInvalidValue},
		{"empty value", "user", "1", ``, ErrInvalidValue},
		{"trailing garbage", "user", "1", `{} {}`, ErrInvalidValue},
		{"jsonb refuses \\u0000", "user", "1", `{"a":"\u0000"}`, ErrInvalidValue},
		{"beyond numeric", "user", "1", `{"a":1e200000}`, ErrInvalidValue},
		{"too large", "user", "1", `{"a":"` + strings.Repeat("x", 40) + `"}`, ErrValueTooLarge},
	}
	for _, tt := range tests {
		if _, err := w.Put(ctx, tt.entity, tt.id, []byte(tt.value)); !errors.Is(err, tt.want) {
			t.Errorf("%s: Put err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := w.Delete(ctx, "ghost", "1"); !errors.Is(err, ErrUnknownEntity) {
		t.Errorf("Delete(unknown entity) err = %v", err)
	}
	if _, err := w.Delete(ctx, "user", ""); !errors.Is(err, ErrInvalidID) {
		t.Errorf("Delete(empty id) err = %v", err)
	}
	for p := range cfg.Partitions {
		if n := rdb.XLen(ctx, w.q.Keys().Stream(p)).Val(); n != 0 {
			t.Errorf("partition %d holds %d entries after rejected writes", p, n)
		}
	}
	if keys := rdb.Keys(ctx, cfg.Namespace+":*").Val(); len(keys) != 1 {
		t.Errorf("keys after rejected writes: %v, want only the meta key", keys)
	}
}

func TestApplyWritesTheGoodOpsAndReportsTheBad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, _, _ := newTestWriter(t)
	results := w.Apply(ctx, []Op{
		{Kind: OpPut, Entity: "user", ID: "1", Value: []byte(`{"a":1}`)},
		{Kind: OpPut, Entity: "user", ID: "2", Value: []byte(`nope`)},
		{Kind: OpDelete, Entity: "session", ID: "3"},
		{Kind: OpPut, Entity: "ghost", ID: "4", Value: []byte(`{}`)},
	})
	wantErr := []error{nil, ErrInvalidValue, nil, ErrUnknownEntity}
	for i, r := range results {
		if !errors.Is(r.Err, wantErr[i]) || (wantErr[i] == nil && r.Version <= 0) {
			t.Errorf("result %d = %+v, want err %v", i, r, wantErr[i])
		}
	}
	for _, id := range []string{"1", "3"} {
		entity := map[string]string{"1": "user", "3": "session"}[id]
		if _, found, err := w.cells.Cached(ctx, entity, id); err != nil || !found {
			t.Errorf("%s/%s not cached after Apply: %v", entity, id, err)
		}
	}
	if _, found, _ := w.cells.Cached(ctx, "user", "2"); found {
		t.Error("rejected op was cached")
	}
}

// TestEveryFaceRefusesAnotherPartitionCount: a reader with the wrong count
// would look for keys in the wrong partitions and read older rows or "not
// found"; a writer would split a key's ops over two streams.
func TestEveryFaceRefusesAnotherPartitionCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	cfg := DefaultWriterConfig()
	cfg.Namespace = ns
	if _, err := NewWriter(ctx, rdb, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Partitions++
	if _, err := NewWriter(ctx, rdb, cfg); !errors.Is(err, ErrPartitionMismatch) {
		t.Errorf("NewWriter: err = %v, want ErrPartitionMismatch", err)
	}
	if _, err := NewReader(ctx, rdb, nil, readerConfig(cfg)); !errors.Is(err, ErrPartitionMismatch) {
		t.Errorf("NewReader: err = %v, want ErrPartitionMismatch", err)
	}
	if _, err := NewReadAside(ctx, rdb, readerConfig(cfg)); !errors.Is(err, ErrPartitionMismatch) {
		t.Errorf("NewReadAside: err = %v, want ErrPartitionMismatch", err)
	}
}
