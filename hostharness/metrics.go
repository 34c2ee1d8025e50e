package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasiserve/wasiserve/internal/metrics"
)

// checkMetricsAddr checks a --metrics value: "" or HOST:PORT.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--metrics %q: want HOST:PORT: %w", addr, err)
	}
	return nil
}

// listenMetrics binds the --metrics address, if any, before anything slow
// starts, so that a port in use fails at once.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	return ln, nil
}

// startReloadsAndMetrics starts the reloads on request (SIGHUP, --watch)
// and the metrics server on metricsLn (when not nil); the returned
// function stops both and waits for them.
func startReloadsAndMetrics(ctx context.Context, env *cliEnv, r serveRun, rl *reloader, metricsLn net.Listener) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	requests, err := reloadRequests(ctx, env.logger, env.sighup, rl.path, r.watch)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("--watch %s: %w", rl.path, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { rl.run(ctx, requests) })
	var srv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.NewRegistry(rl), promhttp.HandlerOpts{}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		env.logger.Info("serving metrics", "at", "http://"+metricsLn.Addr().String()+"/metrics")
		wg.Go(func() {
			if err := srv.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
				env.logger.Warn("metrics server stopped", "err", err)
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
