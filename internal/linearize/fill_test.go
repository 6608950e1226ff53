package linearize

import (
	"context"
	"errors"
	"fmt"

	"github.com/writebehind/writebehind"
)

// fill is ReadAside.Fill as the read-aside client uses it, under the
// contract being introduced: it returns the Item the caller must use as its
// read (its own load if the fill was stored or validated, else the newer
// cached value), or ErrCacheMiss with the lease renewed, to load and fill
// again.
//
// Shim: while the root package still has the old Fill, which only reports
// whether it stored the load, the second case emulates that contract with a
// fresh Get. A type switch on method sets lets this file compile against
// either signature; once Fill returns (Item, error) everywhere, delete the
// second case and call aside.Fill directly.
func fill(ctx context.Context, a *writebehind.ReadAside, l *writebehind.Lease, it writebehind.Item) (writebehind.Item, error) {
	switch f := any(a).(type) {
	case interface {
		Fill(context.Context, *writebehind.Lease, writebehind.Item) (writebehind.Item, error)
	}:
		return f.Fill(ctx, l, it)
	case interface {
		Fill(context.Context, *writebehind.Lease, writebehind.Item) (bool, error)
	}:
		stored, err := f.Fill(ctx, l, it)
		if err != nil || stored {
			return it, err
		}
		// Not stored: something newer is cached, or the cell is empty
		// again; read it, renewing the lease on a miss.
		got, renewed, err := a.Get(ctx, it.Entity, it.ID)
		if errors.Is(err, writebehind.ErrCacheMiss) && l != nil && renewed != nil {
			*l = *renewed
		}
		return got, err
	}
	panic(fmt.Sprintf("linearize: ReadAside.Fill has a signature this test does not know: %T", a))
}
