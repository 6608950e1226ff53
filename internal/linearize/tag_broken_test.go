//go:build wb_broken_fill

package linearize

// brokenFill tells whether this binary was built with -tags wb_broken_fill,
// which removes the lease check from fills (internal/cache).
const brokenFill = true
