//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// pgcacheStep is one request to the pgcache example and its answer.
type pgcacheStep struct {
	Path   string
	Status int
	Body   map[string]any
}

// TestPgcache serves the pgcache example natively and on each engine
// with the allow-list of its PostgreSQL and Redis, each time with a cold
// cache: an item comes from PostgreSQL first, then from Redis (also after
// the row changed underneath), a missing one is 404, and every target
// answers the same. Without the allow-list its health check reports both
// refused.
func TestPgcache(t *testing.T) {
	pg, rdb := startPostgres(t), startRedis(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, pg.url())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price_cents bigint NOT NULL);
		INSERT INTO items VALUES (1, 'teapot', 1999), (2, 'kettle', 4999)`); err != nil {
		t.Fatal(err)
	}
	cache := redis.NewClient(&redis.Options{Addr: rdb.addr, Password: rdb.password})
	defer cache.Close()
	env := []string{"DATABASE_URL=" + pg.url(), "REDIS_URL=" + rdb.url(), "CACHE_TTL=1m"}
	var serveArgs []string
	for _, e := range env {
		serveArgs = append(serveArgs, "--env", e)
	}
	allow := []string{"--allow-dial", "127.0.0.1:" + strconv.Itoa(pg.port), "--allow-dial", rdb.addr}

	steps := func(t *testing.T, s *server) []pgcacheStep {
		if err := cache.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var out []pgcacheStep
		get := func(path string) {
			status, body := s.get(t, path)
			step := pgcacheStep{Path: path, Status: status}
			if err := json.Unmarshal(body, &step.Body); err != nil {
				t.Fatalf("GET %s: %d %q is not JSON", path, status, body)
			}
			out = append(out, step)
		}
		get("/healthz")
		get("/items/1")
		get("/items/1")
		if _, err := db.Exec(ctx, "UPDATE items SET name = 'changed' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		get("/items/1") // still the cached row
		if _, err := db.Exec(ctx, "UPDATE items SET name = 'teapot' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		get("/items/2")
		get("/items/999")
		get("/items/abc")
		return out
	}
	want := []pgcacheStep{
		{"/healthz", 200, map[string]any{"postgres": "ok", "redis": "ok"}},
		{"/items/1", 200, map[string]any{"id": 1.0, "name": "teapot", "price_cents": 1999.0, "source": "postgres"}},
		{"/items/1", 200, map[string]any{"id": 1.0, "name": "teapot", "price_cents": 1999.0, "source": "cache"}},
		{"/items/1", 200, map[string]any{"id": 1.0, "name": "teapot", "price_cents": 1999.0, "source": "cache"}},
		{"/items/2", 200, map[string]any{"id": 2.0, "name": "kettle", "price_cents": 4999.0, "source": "postgres"}},
		{"/items/999", 404, map[string]any{"error": "no item 999"}},
		{"/items/abc", 400, map[string]any{"error": "id: want an integer"}},
	}
	check := func(t *testing.T, s *server) {
		if diff := cmp.Diff(want, steps(t, s)); diff != "" {
			t.Errorf("answers (-want +got):\n%s\nstderr:\n%s", diff, s.logs)
		}
	}
	t.Run("native", func(t *testing.T) { check(t, serveNative(t, bins.pgcacheNative, env...)) })
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			check(t, serve(t, engine, append(append(append([]string{}, serveArgs...), allow...), bins.pgcacheWasm)...))
		})
		t.Run(engine+"/denied", func(t *testing.T) {
			s := serve(t, engine, append(append([]string{}, serveArgs...), bins.pgcacheWasm)...)
			status, body := s.get(t, "/healthz")
			if status != 503 || strings.Count(string(body), "permission denied") != 2 {
				t.Errorf("/healthz without --allow-dial: %d %s; want 503 with both dials refused", status, body)
			}
		})
	}
}
