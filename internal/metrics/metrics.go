// Package metrics defines the Prometheus metrics of the flusher. The zero
// value of a *Flusher is not usable; a nil *Flusher is, and records nothing,
// so tests and tools can run a flusher without a registry.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Flusher holds the flusher's metrics.
type Flusher struct {
	OpsRead       prometheus.Counter
	OpsCoalesced  prometheus.Counter
	RowsWritten   *prometheus.CounterVec
	Batches       prometheus.Counter
	BatchDuration prometheus.Histogram
	CommitErrors  *prometheus.CounterVec
	Retries       prometheus.Counter
	Claims        prometheus.Counter
	DeadLetters   prometheus.Counter
	HeldBytes     prometheus.Gauge
}

// NewFlusher creates the flusher's metrics and registers them with reg.
func NewFlusher(reg prometheus.Registerer) *Flusher {
	m := &Flusher{
		OpsRead:      counter("writebehind_ops_read_total", "Stream entries read by this flusher, including redeliveries."),
		OpsCoalesced: counter("writebehind_ops_coalesced_total", "Ops dropped by coalescing because a newer op on the same key was in the same batch."),
		RowsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writebehind_rows_written_total", Help: "Rows changed in PostgreSQL, by table.",
		}, []string{"table"}),
		Batches: counter("writebehind_batches_total", "Batches committed and acknowledged."),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writebehind_batch_duration_seconds", Help: "Time from a batch's read to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		CommitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writebehind_commit_errors_total", Help: "Failed batch writes, by error class (transient, permanent).",
		}, []string{"class"}),
		Retries:     counter("writebehind_retries_total", "Batch writes retried after a transient error."),
		Claims:      counter("writebehind_claimed_total", "Entries reclaimed from idle consumers."),
		DeadLetters: counter("writebehind_dead_letters_total", "Entries moved to the dead-letter stream."),
		HeldBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writebehind_held_bytes", Help: "Bytes of stream entries this flusher holds, read ahead and being flushed (at most WB_MAX_INFLIGHT_BYTES).",
		}),
	}
	reg.MustRegister(m.OpsRead, m.OpsCoalesced, m.RowsWritten, m.Batches, m.BatchDuration,
		m.CommitErrors, m.Retries, m.Claims, m.DeadLetters, m.HeldBytes)
	return m
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// Batch records one flushed batch: entries read, keys written after
// coalescing, rows changed per table and how long it took.
func (m *Flusher) Batch(entries, keys int, rows map[string]int64, took time.Duration) {
	if m == nil {
		return
	}
	m.OpsCoalesced.Add(float64(entries - keys))
	for table, n := range rows {
		m.RowsWritten.WithLabelValues(table).Add(float64(n))
	}
	m.Batches.Inc()
	m.BatchDuration.Observe(took.Seconds())
}

// Read records entries read from a stream, claimed ones included.
func (m *Flusher) Read(n int) {
	if m != nil {
		m.OpsRead.Add(float64(n))
	}
}

// Claimed records entries reclaimed from idle consumers.
func (m *Flusher) Claimed(n int) {
	if m != nil {
		m.Claims.Add(float64(n))
	}
}

// CommitError records a failed batch write of the given class.
func (m *Flusher) CommitError(class string) {
	if m != nil {
		m.CommitErrors.WithLabelValues(class).Inc()
	}
}

// Retry records a retried batch write.
func (m *Flusher) Retry() {
	if m != nil {
		m.Retries.Inc()
	}
}

// DeadLettered records entries moved to the dead-letter stream.
func (m *Flusher) DeadLettered(n int) {
	if m != nil {
		m.DeadLetters.Add(float64(n))
	}
}

// Held records bytes of entries taken (n > 0) or given back (n < 0).
func (m *Flusher) Held(n int64) {
	if m != nil {
		m.HeldBytes.Add(float64(n))
	}
}
