package coalesce

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/writebehind/writebehind/internal/op"
)

func put(e, id string, v int64, data string) op.Op {
	return op.Op{Kind: op.Put, Entity: e, ID: id, Version: v, Data: []byte(data)}
}

func del(e, id string, v int64) op.Op {
	return op.Op{Kind: op.Delete, Entity: e, ID: id, Version: v}
}

func TestCoalesce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []op.Op
		want []op.Op
	}{
		{name: "empty", in: nil, want: []op.Op{}},
		{
			name: "newest put wins whatever the order",
			in:   []op.Op{put("user", "1", 3, `{"n":3}`), put("user", "1", 1, `{"n":1}`), put("user", "1", 2, `{"n":2}`)},
			want: []op.Op{put("user", "1", 3, `{"n":3}`)},
		},
		{
			name: "delete after put wins",
			in:   []op.Op{put("user", "1", 1, `{}`), del("user", "1", 2)},
			want: []op.Op{del("user", "1", 2)},
		},
		{
			name: "put after delete wins",
			in:   []op.Op{del("user", "1", 2), put("user", "1", 5, `{"a":1}`)},
			want: []op.Op{put("user", "1", 5, `{"a":1}`)},
		},
		{
			name: "same id in two entities stays apart",
			in:   []op.Op{put("user", "1", 1, `{}`), put("session", "1", 2, `{}`)},
			want: []op.Op{put("session", "1", 2, `{}`), put("user", "1", 1, `{}`)},
		},
		{
			name: "sorted by entity then id",
			in:   []op.Op{put("user", "b", 1, `{}`), put("user", "a", 2, `{}`), put("aa", "z", 3, `{}`)},
			want: []op.Op{put("aa", "z", 3, `{}`), put("user", "a", 2, `{}`), put("user", "b", 1, `{}`)},
		},
		{
			name: "a replayed duplicate keeps one copy",
			in:   []op.Op{put("user", "1", 4, `{}`), put("user", "1", 4, `{}`)},
			want: []op.Op{put("user", "1", 4, `{}`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Coalesce(tt.in)); diff != "" {
				t.Errorf("Coalesce() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCoalesceMatchesModel checks random batches against the obvious model:
// the maximum version per key.
func TestCoalesceMatchesModel(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var in []op.Op
		want := map[op.Key]int64{}
		for i := 0; i < r.IntN(300); i++ {
			o := put("user", string(rune('a'+r.IntN(20))), r.Int64N(1000)+1, `{}`)
			if r.IntN(3) == 0 {
				o = del(o.Entity, o.ID, o.Version)
			}
			in = append(in, o)
			want[o.Key()] = max(want[o.Key()], o.Version)
		}
		got := Coalesce(in)
		if len(got) != len(want) {
			t.Fatalf("round %d: got %d keys, want %d", round, len(got), len(want))
		}
		for i, o := range got {
			if o.Version != want[o.Key()] {
				t.Fatalf("round %d: key %v has version %d, want %d", round, o.Key(), o.Version, want[o.Key()])
			}
			if i > 0 && got[i-1].ID >= o.ID {
				t.Fatalf("round %d: not sorted at %d", round, i)
			}
		}
	}
}
