// Command guest is the wasiserve echo service. The same source builds for
// WASI (GOOS=wasip1 GOARCH=wasm go build -o echo.wasm ./guest), where it
// serves on the listening socket its host preopened, and natively
// (go run ./guest), where it listens on -listen or $LISTEN_ADDR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var args []string
	if len(os.Args) > 1 { // a WASI host may pass no arguments at all, not even a name
		args = os.Args[1:]
	}
	if err := run(logger, args); err != nil {
		logger.Error("echo guest stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger, args []string) error {
	flags := flag.NewFlagSet("guest", flag.ContinueOnError)
	defaultAddr := os.Getenv("LISTEN_ADDR")
	if defaultAddr == "" {
		defaultAddr = wasisock.DefaultAddr
	}
	addr := flags.String("listen", defaultAddr, "address to listen on when no socket is inherited (native builds; host:port or unix:/path)")
	name := flags.String("listen-name", "", "LISTEN_FDNAMES entry of the socket to serve on")
	if err := flags.Parse(args); err != nil {
		return err
	}
	cfg, err := echo.ServerConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	ln, info, err := listen(wasisock.Config{Addr: *addr, Name: *name})
	if err != nil {
		return err
	}
	server := echo.NewServer(routes(echo.NewHandler(info, logger), logger), cfg)
	drainer := echo.NewDrainer(server)

	ctx, stop := shutdownContext()
	defer stop()
	drained := make(chan error, 1)
	go func() {
		<-ctx.Done()
		drained <- drain(logger, drainer)
	}()

	logger.Info("echo guest serving", "source", info.Source, "fd", info.FD, "addr", info.Addr)
	err = server.Serve(ln)
	switch {
	case wasisock.Drained(err):
		// The host stopped the listener: a graceful stop (hostharness
		// serve on SIGTERM), the only one a WASI guest is told of.
		logger.Info("listener stopped by the host")
		return drain(logger, drainer)
	case errors.Is(err, http.ErrServerClosed): // a signal: see shutdownContext
		return <-drained
	default:
		return fmt.Errorf("serve: %w", err)
	}
}

// drainTimeout bounds how long the guest waits for requests in flight
// once told to stop; its host may stop it sooner.
const drainTimeout = 30 * time.Second

// drain answers the requests the server has, then closes its connections.
func drain(logger *slog.Logger, server *echo.Drainer) error {
	logger.Info("draining: finishing requests in flight")
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	logger.Info("drained")
	return nil
}
