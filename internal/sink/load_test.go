package sink

import (
	"context"
	"errors"
	"testing"

	"github.com/writebehind/writebehind/internal/op"
)

func TestLoadManySkipsTombstonesAndMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := setup(t)
	if _, err := s.Write(ctx, []op.Op{put("1", 1, `{"a": 1}`), put("2", 2, `{"a": 2}`), del("3", 3)}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.LoadMany(ctx, "user", []string{"1", "2", "3", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || string(rows["1"].Data) != `{"a": 1}` || rows["2"].Version != 2 {
		t.Errorf("LoadMany returned %v", rows)
	}
	if _, err := s.LoadMany(ctx, "nope", []string{"1"}); !errors.Is(err, ErrUnknownEntity) {
		t.Errorf("unknown entity: %v", err)
	}
}
