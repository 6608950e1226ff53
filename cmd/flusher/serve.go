package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/health"
	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// scrapeTimeout bounds the Redis reads of one scrape and of one readiness
// probe.
const scrapeTimeout = 2 * time.Second

// serveOps starts the metrics and health server on WB_METRICS_ADDR and
// returns the flusher's metrics and a function that stops the server. With
// the address empty it serves nothing and the metrics record nothing.
// Readiness fails as soon as ctx is cancelled, while the batches in hand
// are still finishing.
func serveOps(ctx context.Context, cfg config, q *queue.Queue, s *sink.Sink, log zerolog.Logger) (*metrics.Flusher, func(), error) {
	if cfg.MetricsAddr == "" {
		return nil, func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.NewFlusher(reg)
	reg.MustRegister(metrics.NewPartitions(q, cfg.Group, scrapeTimeout))
	srv := health.New(health.Options{
		Addr:         cfg.MetricsAddr,
		Gatherer:     reg,
		Checks:       []health.Check{{Name: "redis", Fn: q.Ping}, {Name: "postgres", Fn: s.Ping}},
		CheckTimeout: scrapeTimeout,
	})
	if err := srv.Start(); err != nil {
		return nil, nil, err
	}
	stopReady := context.AfterFunc(ctx, srv.ShuttingDown)
	log.Info().Str("addr", srv.Addr()).Msg("serving /metrics, /healthz and /readyz")
	return m, func() {
		stopReady()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scrapeTimeout)
		defer cancel()
		_ = srv.Stop(sctx)
	}, nil
}
