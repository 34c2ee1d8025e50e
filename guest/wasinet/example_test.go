package wasinet_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/wasiserve/wasiserve/guest/wasinet"
)

// An HTTP client whose connections go through the host: on wasip1 it
// reaches a server only where the host's dial policy allows it
// (hostharness serve --allow-dial api.internal:8080).
func ExampleNewTransport() {
	client := &http.Client{Transport: wasinet.NewTransport(), Timeout: 10 * time.Second}
	resp, err := client.Get("http://api.internal:8080/v1/items")
	if err != nil {
		log.Print(err) // a refused dial: "... permission denied: the host's dial policy does not allow ..."
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}

// http.Get and http.DefaultClient dial through the package once
// SetDefaultTransport ran.
func ExampleSetDefaultTransport() {
	wasinet.SetDefaultTransport()
	resp, err := http.Get("http://api.internal:8080/")
	if err != nil {
		log.Print(err)
		return
	}
	resp.Body.Close()
}

// pgx dials and resolves host names itself: give it the package's
// functions (hostharness serve --allow-dial db.internal:5432).
func Example_pgx() {
	cfg, err := pgxpool.ParseConfig("postgres://app:secret@db.internal:5432/shop?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	cfg.ConnConfig.DialFunc = wasinet.DialContext
	cfg.ConnConfig.LookupFunc = wasinet.LookupHost
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
}

// go-redis takes a dialer (hostharness serve --allow-dial cache.internal:6379).
func Example_redis() {
	rdb := redis.NewClient(&redis.Options{Addr: "cache.internal:6379", Dialer: wasinet.DialContext})
	defer rdb.Close()
}
