package writebehind_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind"
)

// An app writes through a Writer and returns at Redis speed; flushers make
// the writes durable in PostgreSQL.
func ExampleWriter() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	cfg := writebehind.DefaultWriterConfig()
	cfg.Entities = writebehind.Entities{"user": "users"}
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := w.Put(ctx, "user", "42", []byte(`{"name":"Ada"}`)); err != nil {
		fmt.Println(err)
	}
	if _, err := w.Put(ctx, "user", "43", []byte(`not json`)); errors.Is(err, writebehind.ErrInvalidValue) {
		fmt.Println("rejected, nothing written")
	}
}
