// Package fetch is the echo guest's outbound route, built into its
// variant for the WasmEdge socket extensions only: GET /fetch?url=URL
// fetches URL and answers with the upstream's status, Content-Type and
// body, or 502 Bad Gateway with the error when the request fails (a dial
// the host's policy refuses, say). It proves that a guest can reach out.
//
// Anyone who can reach the route can make the guest request any URL its
// network lets it reach (server-side request forgery): serve it only
// where the host limits where the guest may connect, as the wasiserve
// engine's --allow-dial does.
package fetch

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
)

// Pattern is the route the handler serves, as http.ServeMux takes it.
const Pattern = "GET /fetch"

// NewHandler returns the route, fetching with client; logger receives
// failed fetches (nil discards them).
func NewHandler(client *http.Client, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return handler{client: client, logger: logger}
}

type handler struct {
	client *http.Client
	logger *slog.Logger
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, err := upstreamURL(r.URL.Query().Get("url"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.logger.Warn("fetch failed", "url", target, "err", err)
		http.Error(w, fmt.Sprintf("fetch %s: %v", target, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		// The status line is out; the client sees a short body.
		h.logger.Warn("fetch: copy the upstream body", "url", target, "err", err)
	}
}

// upstreamURL checks the url parameter: an absolute http or https URL.
func upstreamURL(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("want ?url=http://host/path")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("url %q: want an absolute http or https URL", raw)
	}
	return u.String(), nil
}
