// Command pgcache is a small JSON service that reads items from
// PostgreSQL and caches them in Redis, built for wasip1 and served by
// hostharness serve with an allow-list, or run natively: the same code
// both ways (see the README's "A service with a database and a cache").
//
//	GET /items/{id}  the item as JSON, with "source": "postgres" or "cache"
//	GET /healthz     200 when both PostgreSQL and Redis answer, else 503
//
// Environment: DATABASE_URL (e.g.
// postgres://app:secret@127.0.0.1:5432/shop?sslmode=disable), REDIS_URL
// (e.g. redis://127.0.0.1:6379/0), CACHE_TTL (default 30s); natively
// LISTEN_ADDR (default 127.0.0.1:8080). It reads the table
//
//	CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price_cents bigint NOT NULL);
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/wasiserve/wasiserve/guest/wasihttp"
	"github.com/wasiserve/wasiserve/guest/wasinet"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// defaultTTL is how long an item stays in the cache without CACHE_TTL.
const defaultTTL = 30 * time.Second

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("pgcache stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	ttl := defaultTTL
	if v := os.Getenv("CACHE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("CACHE_TTL %q: want a positive duration", v)
		}
		ttl = d
	}
	dbConfig, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	// pgx dials and resolves host names itself: through wasinet, so that
	// on wasip1 the host's socket extensions and dial policy apply.
	dbConfig.ConnConfig.DialFunc = wasinet.DialContext
	dbConfig.ConnConfig.LookupFunc = wasinet.LookupHost
	db, err := pgxpool.NewWithConfig(context.Background(), dbConfig)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	cacheOpts, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	cacheOpts.Dialer = wasinet.DialContext
	cache := redis.NewClient(cacheOpts)
	defer cache.Close()

	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = wasisock.DefaultAddr
	}
	ln, info, err := wasisock.Listen(wasisock.Config{Addr: addr}) // Addr: native builds only
	if err != nil {
		return err
	}
	logger.Info("pgcache serving", "source", info.Source, "addr", info.Addr, "cache_ttl", ttl)
	srv := &http.Server{
		Handler:           newService(db, cache, ttl, logger).routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return wasihttp.Serve(srv, ln)
}
