// Command callout is a guest that calls out, one route per kind of
// upstream, each answered as JSON: an HTTP or HTTPS URL through
// wasinet.NewTransport (GET /fetch), PostgreSQL with pgx (GET /pg), Redis
// with go-redis (GET /redis), a raw TCP connection's addresses, half close
// and deadline (GET /tcp), a host name lookup (GET /lookup) and a bare
// connect (GET /connect). The project's end-to-end tests and benchmarks
// serve it natively and under each engine and compare the answers.
//
//	GOOS=wasip1 GOARCH=wasm go build -o callout.wasm ./examples/callout
//	hostharness serve --allow-dial 127.0.0.1:5432 --env DATABASE_URL=postgres://... callout.wasm
//
// Environment: DATABASE_URL (a pgx connection string) and REDIS_URL
// (redis://[:password@]host:port[/db]) enable /pg and /redis; SSL_CERT_FILE or SSL_CERT_DIR give
// the TLS roots of /fetch on wasip1. Natively it listens on -listen or
// $LISTEN_ADDR.
//
// The routes connect wherever a client asks (server-side request
// forgery by design): serve it only where the host's dial policy limits
// where it may connect, as hostharness serve's --allow-dial does.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/wasiserve/wasiserve/guest/wasihttp"
	"github.com/wasiserve/wasiserve/guest/wasinet"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func main() {
	var args []string
	if len(os.Args) > 1 { // a WASI host may pass no arguments at all
		args = os.Args[1:]
	}
	if err := run(args); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	flags := flag.NewFlagSet("callout", flag.ContinueOnError)
	addr := flags.String("listen", os.Getenv("LISTEN_ADDR"), "address to listen on natively")
	if err := flags.Parse(args); err != nil {
		return err
	}
	s := &service{client: &http.Client{Transport: wasinet.NewTransport()}}
	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		cfg.ConnConfig.DialFunc = wasinet.DialContext
		cfg.ConnConfig.LookupFunc = wasinet.LookupHost
		// Connections are made at the first query, not here.
		if s.db, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		defer s.db.Close()
	}
	if u := os.Getenv("REDIS_URL"); u != "" {
		opts, err := redis.ParseURL(u)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.Dialer = wasinet.DialContext
		s.redis = redis.NewClient(opts)
		defer s.redis.Close()
	}
	ln, _, err := wasisock.Listen(wasisock.Config{Addr: *addr})
	if err != nil {
		return err
	}
	return wasihttp.Serve(&http.Server{Handler: s.routes()}, ln)
}
