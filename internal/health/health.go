// Package health serves a flusher's operational endpoints over HTTP:
// /metrics for Prometheus, /healthz (the process answers) for liveness and
// /readyz (its servers answer and it is not shutting down) for readiness.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one dependency /readyz tries: Fn returns nil when it answers.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configure a Server.
type Options struct {
	// Addr is the listen address, "host:port" (port 0 picks a free one).
	Addr string
	// Gatherer is what /metrics serves.
	Gatherer prometheus.Gatherer
	// Checks are tried by /readyz, all within CheckTimeout (default 2s).
	Checks       []Check
	CheckTimeout time.Duration
}

// Server serves the endpoints. Start it once; Stop is safe to call twice.
type Server struct {
	opt      Options
	srv      *http.Server
	ln       net.Listener
	stopping atomic.Bool
	stopOnce sync.Once
	done     chan struct{}
}

// ErrShuttingDown is what /readyz reports once ShuttingDown was called.
var ErrShuttingDown = errors.New("shutting down")

// New returns a server; nothing listens until Start.
func New(opt Options) *Server {
	if opt.CheckTimeout <= 0 {
		opt.CheckTimeout = 2 * time.Second
	}
	s := &Server{opt: opt, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opt.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

// Start serves in the background; it returns once bound, for probes to reach.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opt.Addr)
	if err != nil {
		return fmt.Errorf("metrics listener on %s: %w", s.opt.Addr, err)
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return nil
}

// Addr is the bound address (the real port for port 0); call it after Start.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ShuttingDown makes /readyz fail from now on: no new work for this process.
func (s *Server) ShuttingDown() { s.stopping.Store(true) }

// Stop closes the listener and waits for requests in flight until ctx is done.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.ShuttingDown()
		err = s.srv.Shutdown(ctx)
		if s.ln != nil {
			<-s.done
		}
	})
	return err
}

// Ready tries every check and returns the failures by name (empty: ready).
func (s *Server) Ready(ctx context.Context) map[string]error {
	failed := map[string]error{}
	if s.stopping.Load() {
		failed["process"] = ErrShuttingDown
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.CheckTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.opt.Checks {
		wg.Go(func() {
			if err := c.Fn(ctx); err != nil {
				mu.Lock()
				failed[c.Name] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	failed := s.Ready(r.Context())
	if len(failed) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, c := range append([]Check{{Name: "process"}}, s.opt.Checks...) {
		if err, ok := failed[c.Name]; ok {
			fmt.Fprintf(w, "%s: %v\n", c.Name, err)
		}
	}
}
