// Command guest is the wasiserve echo service. The same source builds for
// WASI (GOOS=wasip1 GOARCH=wasm go build -o echo.wasm ./guest), where it
// serves on the listening socket its host preopened, and natively
// (go run ./guest), where it listens on -listen or $LISTEN_ADDR.
package main

import (
	"flag"
	"log/slog"
	"os"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasihttp"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// defaultHTTPServer is ECHO_HTTP_SERVER's default; a build may set it
// with -ldflags=-X=main.defaultHTTPServer=net/http (hostharness compare's
// run against net/http's server does).
var defaultHTTPServer = "fast"

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
	cfg, err := echo.ServerConfigFromEnv(func(k string) string {
		if v := os.Getenv(k); v != "" || k != echo.EnvHTTPServer {
			return v
		}
		return defaultHTTPServer
	})
	if err != nil {
		return err
	}
	ln, info, err := listen(wasisock.Config{Addr: *addr, Name: *name})
	if err != nil {
		return err
	}
	server := echo.NewServer(routes(echo.NewHandler(info, logger), logger), cfg)
	server.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelInfo)
	ctx, stop := shutdownContext()
	defer stop()
	logger.Info("echo guest serving", "source", info.Source, "fd", info.FD, "addr", info.Addr)
	// On a host's drain (hostharness serve on SIGTERM, or a reload) or a
	// signal natively: finish the requests in flight, then return.
	var opts []wasihttp.Option
	if cfg.NetHTTP {
		opts = append(opts, wasihttp.WithNetHTTP())
	}
	if err := wasihttp.ServeContext(ctx, server, ln, opts...); err != nil {
		return err
	}
	logger.Info("drained")
	return nil
}
