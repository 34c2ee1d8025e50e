//go:build wasmedge

package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/wasiserve/wasiserve/guest/fetch"
)

// fetchTimeout bounds one upstream request of GET /fetch.
const fetchTimeout = 30 * time.Second

// routes adds GET /fetch (package fetch) to the echo service, with a
// client that dials through dialContext; every other request reaches the
// echo service unchanged.
func routes(echoService http.Handler, logger *slog.Logger) http.Handler {
	client := &http.Client{
		Transport: &http.Transport{DialContext: dialContext},
		Timeout:   fetchTimeout,
	}
	mux := http.NewServeMux()
	mux.Handle(fetch.Pattern, fetch.NewHandler(client, logger))
	mux.Handle("/", echoService)
	return mux
}
