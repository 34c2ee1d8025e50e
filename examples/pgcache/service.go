package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Bounds of one request's calls to PostgreSQL and Redis.
const (
	queryTimeout = 5 * time.Second
	cacheTimeout = time.Second
)

// Item is one row of the items table.
type Item struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
}

// itemAnswer is GET /items/{id}'s body: the item and where it came from.
type itemAnswer struct {
	Item
	Source string `json:"source"` // "postgres" or "cache"
}

type service struct {
	db     *pgxpool.Pool
	cache  *redis.Client
	ttl    time.Duration
	logger *slog.Logger
}

func newService(db *pgxpool.Pool, cache *redis.Client, ttl time.Duration, logger *slog.Logger) *service {
	return &service{db: db, cache: cache, ttl: ttl, logger: logger}
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", s.item)
	mux.HandleFunc("GET /healthz", s.healthz)
	return mux
}

// cacheKey is the Redis key of item id.
func cacheKey(id int64) string { return "pgcache:item:" + strconv.FormatInt(id, 10) }

// item answers from the cache, else from PostgreSQL, and then fills the
// cache. A cache that fails is logged and bypassed: the answer then comes
// from PostgreSQL.
func (s *service) item(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id: want an integer"})
		return
	}
	if it, ok := s.cached(r.Context(), id); ok {
		writeJSON(w, http.StatusOK, itemAnswer{Item: it, Source: "cache"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	it := Item{ID: id}
	err = s.db.QueryRow(ctx, "SELECT name, price_cents FROM items WHERE id = $1", id).Scan(&it.Name, &it.PriceCents)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no item " + strconv.FormatInt(id, 10)})
		return
	case err != nil:
		s.logger.Error("query item", "id", id, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "database: " + err.Error()})
		return
	}
	s.store(r.Context(), it)
	writeJSON(w, http.StatusOK, itemAnswer{Item: it, Source: "postgres"})
}

// cached returns item id from the cache, if it is there.
func (s *service) cached(ctx context.Context, id int64) (Item, bool) {
	ctx, cancel := context.WithTimeout(ctx, cacheTimeout)
	defer cancel()
	data, err := s.cache.Get(ctx, cacheKey(id)).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			s.logger.Warn("cache read failed; asking the database", "id", id, "err", err)
		}
		return Item{}, false
	}
	var it Item
	if err := json.Unmarshal(data, &it); err != nil {
		s.logger.Warn("cache holds a bad entry; asking the database", "id", id, "err", err)
		return Item{}, false
	}
	return it, true
}

// store puts it into the cache for s.ttl.
func (s *service) store(ctx context.Context, it Item) {
	data, err := json.Marshal(it)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, cacheTimeout)
	defer cancel()
	if err := s.cache.Set(ctx, cacheKey(it.ID), data, s.ttl).Err(); err != nil {
		s.logger.Warn("cache write failed", "id", it.ID, "err", err)
	}
}

// healthz answers 200 when PostgreSQL and Redis both answer, else 503
// with each one's error.
func (s *service) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	status := map[string]string{"postgres": "ok", "redis": "ok"}
	code := http.StatusOK
	if err := s.db.Ping(ctx); err != nil {
		status["postgres"], code = err.Error(), http.StatusServiceUnavailable
	}
	if err := s.cache.Ping(ctx).Err(); err != nil {
		status["redis"], code = err.Error(), http.StatusServiceUnavailable
	}
	writeJSON(w, code, status)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
