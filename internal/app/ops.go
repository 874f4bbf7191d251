package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check is one readiness condition; it returns nil when satisfied.
type Check func(ctx context.Context) error

// OpsOptions configure the operations endpoints.
type OpsOptions struct {
	Addr     string
	Registry *prometheus.Registry
	// Checks must all pass for /readyz; their names appear in its answer.
	Checks map[string]Check
	// Extra handlers mounted by path (e.g. /backup).
	Extra  map[string]http.Handler
	Logger *slog.Logger
}

// Ops serves /healthz (the process is alive), /readyz (it can do its job)
// and /metrics (Prometheus).
type Ops struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
	err chan error
}

// StartOps listens on o.Addr and serves until Shutdown.
func StartOps(o OpsOptions) (*Ops, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(o.Checks))
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	for path, h := range o.Extra {
		mux.Handle(path, h)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("OTPGATE_OPS_LISTEN: %w", err)
	}
	ops := &Ops{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:  ln, log: o.Logger.With("component", "ops"), err: make(chan error, 1),
	}
	go func() { ops.err <- ops.srv.Serve(ln) }()
	ops.log.Info("ops endpoints listening", "addr", ln.Addr().String())
	return ops, nil
}

// Addr is where the endpoints listen.
func (o *Ops) Addr() string { return o.ln.Addr().String() }

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (o *Ops) Shutdown(ctx context.Context) error {
	err := o.srv.Shutdown(ctx)
	if serveErr := <-o.err; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

func readyHandler(checks map[string]Check) http.Handler {
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var failed []string
		for _, n := range names {
			if err := checks[n](ctx); err != nil {
				failed = append(failed, n)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", strings.Join(failed, ", "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
}
