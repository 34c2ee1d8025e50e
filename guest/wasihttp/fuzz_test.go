package wasihttp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/guest/wasihttp/internal/difftest"
)

// fuzzServer is routerServer without the handlers whose answers depend on
// timing (a context watched against a 200 ms timer) or that log.
func fuzzServer() *http.Server {
	mux := http.NewServeMux()
	for name, h := range handlers {
		switch name {
		case "done", "panic":
			continue
		}
		mux.Handle("/"+name, h)
		mux.Handle("/"+name+"/", http.StripPrefix("/"+name, h))
	}
	return &http.Server{Handler: mux, MaxHeaderBytes: 2048}
}

// FuzzFastPathMatchesNetHTTP sends the same bytes to net/http's server
// and to the fast path, each on a fresh connection closed for writing
// after them, and fails where the answers or the end of the connection
// differ. Seeds: every raw case of the differential test.
func FuzzFastPathMatchesNetHTTP(f *testing.F) {
	for _, tc := range rawCases {
		if tc.ex.HalfClose && !strings.Contains(tc.ex.Chunks[0], "/done") && !strings.Contains(tc.ex.Chunks[0], "/panic") {
			f.Add([]byte(strings.Join(tc.ex.Chunks, "")))
		}
	}
	p := difftest.Start(f, fuzzServer)
	f.Fuzz(func(t *testing.T, data []byte) {
		p.Same(t, difftest.Exchange{HalfClose: true, Chunks: []string{string(data)}})
	})
}
