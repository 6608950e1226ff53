package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writebehind/writebehind/internal/queue"
)

// Partitions is a prometheus.Collector of each partition's queue state, read
// from Redis at every scrape (within a timeout): as fresh as the scrape, free
// between scrapes. Every flusher reports the whole group: aggregate with max.
type Partitions struct {
	q       *queue.Queue
	group   string
	timeout time.Duration

	up, length, lag, pending, oldest, dead *prometheus.Desc
}

// NewPartitions returns the collector of group's state on q; a scrape waits
// at most timeout for Redis.
func NewPartitions(q *queue.Queue, group string, timeout time.Duration) *Partitions {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"partition"}, nil)
	}
	return &Partitions{
		q: q, group: group, timeout: timeout,
		up:      prometheus.NewDesc("writebehind_queue_up", "1 when the last scrape could read the queue state from Redis, else 0.", nil, nil),
		length:  desc("writebehind_stream_length", "Entries in the partition stream."),
		lag:     desc("writebehind_lag", "Entries of the partition the group has not read yet."),
		pending: desc("writebehind_pending", "Entries of the partition read and not yet acknowledged."),
		oldest:  desc("writebehind_oldest_pending_age_seconds", "Age of the oldest pending entry of the partition (0: none)."),
		dead:    desc("writebehind_dead_letter_length", "Entries in the partition's dead-letter stream."),
	}
}

// Describe implements prometheus.Collector.
func (c *Partitions) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.length, c.lag, c.pending, c.oldest, c.dead} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Partitions) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	infos, err := c.q.InspectAll(ctx, c.group)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, in := range infos {
		p := strconv.Itoa(in.Partition)
		ch <- prometheus.MustNewConstMetric(c.length, prometheus.GaugeValue, float64(in.Length), p)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(in.Lag), p)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(in.Pending), p)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, in.OldestPendingAge.Seconds(), p)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(in.DeadLetters), p)
	}
}
