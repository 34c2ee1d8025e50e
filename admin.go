package wasiserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasiserve/wasiserve/internal/metrics"
)

// listenAdmin binds the admin address, if any, before anything slow
// starts, so that a port in use fails at once.
func listenAdmin(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &OptionError{Option: "AdminAddr", Err: err}
	}
	return ln, nil
}

// startReloadsAndAdmin starts the reloads on request (Reload, Watch) and
// the admin server on adminLn (when not nil); the returned function stops
// both and waits for them.
func (s *Server) startReloadsAndAdmin(ctx context.Context, rl *reloader, adminLn net.Listener) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	requests, err := reloadRequests(ctx, s.log, s.reloads, rl.path, s.opts.Watch)
	if err != nil {
		cancel()
		return nil, &OptionError{Option: "Watch", Value: rl.path, Err: err}
	}
	var wg sync.WaitGroup
	wg.Go(func() { rl.run(ctx, requests) })
	var srv *http.Server
	if adminLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.NewRegistry(rl), promhttp.HandlerOpts{}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.log.Info("serving metrics", "at", "http://"+adminLn.Addr().String()+"/metrics")
		wg.Go(func() {
			if err := srv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				s.log.Warn("metrics server stopped", "err", err)
			}
		})
	}
	return func() {
		cancel()
		if srv != nil {
			srv.Close()
		}
		wg.Wait()
	}, nil
}
