package fetch_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/fetch"
)

func TestFetch(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/x-teapot")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout "+r.URL.Path)
	}))
	defer upstream.Close()
	// A port nothing listens on: bind one, then close it.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + closed.Addr().String() + "/"
	closed.Close()

	mux := http.NewServeMux()
	mux.Handle(fetch.Pattern, fetch.NewHandler(&http.Client{Timeout: 10 * time.Second}, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		name, query string
		wantStatus  int
		wantType    string
		wantBody    string
	}{
		{"upstream answer", "url=" + url.QueryEscape(upstream.URL+"/pot"), http.StatusTeapot, "text/x-teapot", "short and stout /pot"},
		{"refused dial", "url=" + url.QueryEscape(refused), http.StatusBadGateway, "text/plain; charset=utf-8", "connection refused"},
		{"no url", "", http.StatusBadRequest, "text/plain; charset=utf-8", "want ?url="},
		{"not http", "url=" + url.QueryEscape("file:///etc/passwd"), http.StatusBadRequest, "text/plain; charset=utf-8", "want an absolute http"},
		{"relative", "url=%2Fpath", http.StatusBadRequest, "text/plain; charset=utf-8", "want an absolute http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/fetch?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != tc.wantType || !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("%d %q %q; want %d %q, a body containing %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.wantStatus, tc.wantType, tc.wantBody)
			}
		})
	}
}
