package writebehind_test

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind"
)

// An app that loads documents itself uses the read-aside face: on a miss it
// loads and fills through the lease, which drops the fill if a write came
// first.
func ExampleReadAside() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	a, err := writebehind.NewReadAside(ctx, rdb, writebehind.DefaultReaderConfig())
	if err != nil {
		return
	}
	item, lease, err := a.Get(ctx, "user", "7")
	if errors.Is(err, writebehind.ErrCacheMiss) {
		item = writebehind.Item{Entity: "user", ID: "7", Found: true, Data: []byte(`{"name":"Ada"}`)} // from the app's store
		_, _ = a.Fill(ctx, lease, item)
	}
	_ = item
}
