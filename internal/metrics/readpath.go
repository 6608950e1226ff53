package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// ReadPath holds the read path's metrics.
type ReadPath struct {
	Hits        prometheus.Counter
	Misses      prometheus.Counter
	Fills       prometheus.Counter
	Loads       prometheus.Counter
	LoadErrors  prometheus.Counter
	LoadSeconds prometheus.Histogram
	Fallbacks   prometheus.Counter
}

// NewReadPath creates the read path's metrics and registers them with reg
// (an app's registry, or prometheus.DefaultRegisterer). Several read paths on
// one registry share its collectors: the counts are the process's.
func NewReadPath(reg prometheus.Registerer) (*ReadPath, error) {
	m := &ReadPath{
		Hits:       counter("writebehind_read_hits_total", "Reads answered from the cache (negative hits included)."),
		Misses:     counter("writebehind_read_misses_total", "Reads the cache could not answer."),
		Fills:      counter("writebehind_read_fills_total", "Loaded values stored in the cache."),
		Loads:      counter("writebehind_read_loads_total", "Loads from the database (or an app loader)."),
		LoadErrors: counter("writebehind_read_load_errors_total", "Loads that failed."),
		LoadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writebehind_read_load_duration_seconds", Help: "Time a load took.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		Fallbacks: counter("writebehind_read_redis_fallbacks_total", "Reads served by the loader because Redis failed."),
	}
	for _, c := range []*prometheus.Counter{&m.Hits, &m.Misses, &m.Fills, &m.Loads, &m.LoadErrors, &m.Fallbacks} {
		if err := register(reg, c); err != nil {
			return nil, err
		}
	}
	if err := register(reg, &m.LoadSeconds); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers *c with reg, or takes the one reg has under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	err := reg.Register(*c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		existing, ok := already.ExistingCollector.(C)
		if !ok {
			return fmt.Errorf("metrics: another collector is registered as %T", already.ExistingCollector)
		}
		*c = existing
		return nil
	}
	return err
}
