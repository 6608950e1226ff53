// Package coalesce reduces a batch of ops to one op per key, the newest. It
// does no I/O, so the flusher's core rule can be tested without servers.
package coalesce

import (
	"cmp"
	"slices"

	"github.com/writebehind/writebehind/internal/op"
)

// Coalesce returns one op per key, the one with the highest version, sorted
// by entity and then id. The order matters: transactions that write rows in
// one global key order cannot deadlock each other, and PostgreSQL rejects an
// INSERT ... ON CONFLICT that names the same key twice. The input is not
// modified.
func Coalesce(ops []op.Op) []op.Op {
	newest := make(map[op.Key]int, len(ops))
	out := make([]op.Op, 0, len(ops))
	for _, o := range ops {
		k := o.Key()
		if i, ok := newest[k]; ok {
			if o.Version > out[i].Version {
				out[i] = o
			}
			continue
		}
		newest[k] = len(out)
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b op.Op) int {
		return cmp.Or(cmp.Compare(a.Entity, b.Entity), cmp.Compare(a.ID, b.ID))
	})
	return out
}
