package echo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	info := wasisock.Info{Source: wasisock.SourceAddress, FD: -1}
	srv := httptest.NewUnstartedServer(echo.NewHandler(info, nil))
	srv.Config = echo.NewServer(srv.Config.Handler, echo.DefaultServerConfig())
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestHandler(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, method, path, contentType, body string
		wantStatus                            int
		wantType, wantBody                    string
	}{
		{"curl echo", "POST", "/", "text/plain", "echo", 200, "text/plain", "echo"},
		{"default type", "PUT", "/a/b?c=d", "", "data", 200, "text/plain", "data"},
		{"mirrored type", "PATCH", "/x", "application/octet-stream", "\x00\x01", 200, "application/octet-stream", "\x00\x01"},
		{"empty body", "DELETE", "/", "", "", 200, "text/plain", ""},
		{"healthz", "GET", "/healthz", "", "", 200, "text/plain; charset=utf-8", "ok\n"},
		{"POST healthz echoes", "POST", "/healthz", "text/plain", "not a probe", 200, "text/plain", "not a probe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != tc.wantType || string(got) != tc.wantBody {
				t.Fatalf("got %d %q %q, want %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), got, tc.wantStatus, tc.wantType, tc.wantBody)
			}
		})
	}
}

func TestListenerReport(t *testing.T) {
	srv := newServer(t)
	var client net.Addr
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			client = c.LocalAddr()
		}
		return c, err
	}}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Get(srv.URL + "/listener")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var report echo.Report
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	if report.Listener.Source != wasisock.SourceAddress || report.GoVersion == "" || report.GOOS == "" {
		t.Fatalf("report %+v", report)
	}
	if report.RemoteAddr != client.String() || report.LocalAddr != srv.Listener.Addr().String() {
		t.Fatalf("report says remote %s, local %s; the client is %s, the server %s",
			report.RemoteAddr, report.LocalAddr, client, srv.Listener.Addr())
	}
}

// TestStreamsWithoutBuffering proves the echo is streamed: the response
// starts arriving while most of the request body is still unsent, and
// 100 MiB come back byte for byte.
func TestStreamsWithoutBuffering(t *testing.T) {
	srv := newServer(t)
	const total, first = 100 << 20, 1 << 20
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	pr, pw := io.Pipe()
	sentHash := sha256.New()
	proceed := make(chan struct{})
	go func() {
		w := io.MultiWriter(pw, sentHash)
		for sent := 0; sent < total; sent += len(chunk) {
			if sent == first {
				select {
				case <-proceed:
				case <-time.After(30 * time.Second):
					pw.CloseWithError(io.ErrUnexpectedEOF)
					return
				}
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequest("POST", srv.URL, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	gotHash := sha256.New()
	if _, err := io.CopyN(gotHash, resp.Body, first); err != nil {
		t.Fatalf("reading the first MiB before the rest was sent: %v", err)
	}
	close(proceed)
	n, err := io.Copy(gotHash, resp.Body)
	if err != nil || n+first != total {
		t.Fatalf("echoed %d bytes, %v; want %d", n+first, err, total)
	}
	if !bytes.Equal(gotHash.Sum(nil), sentHash.Sum(nil)) {
		t.Fatal("echoed body differs from the one sent")
	}
}

func TestServerConfigFromEnv(t *testing.T) {
	def := echo.DefaultServerConfig()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    echo.ServerConfig
		wantErr string
	}{
		{"defaults", nil, def, ""},
		{"overrides", map[string]string{echo.EnvReadHeaderTimeout: "2s", echo.EnvReadTimeout: "3s", echo.EnvWriteTimeout: "4s",
			echo.EnvIdleTimeout: "1m", echo.EnvMaxHeaderBytes: "4096"},
			echo.ServerConfig{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 4 * time.Second,
				IdleTimeout: time.Minute, MaxHeaderBytes: 4096}, ""},
		{"bad read timeout", map[string]string{echo.EnvReadTimeout: "0s"}, def, echo.EnvReadTimeout},
		{"bad duration", map[string]string{echo.EnvIdleTimeout: "soon"}, def, echo.EnvIdleTimeout},
		{"negative duration", map[string]string{echo.EnvReadHeaderTimeout: "-1s"}, def, echo.EnvReadHeaderTimeout},
		{"bad size", map[string]string{echo.EnvMaxHeaderBytes: "1k"}, def, echo.EnvMaxHeaderBytes},
		{"net/http", map[string]string{echo.EnvHTTPServer: "net/http"}, func() echo.ServerConfig { c := def; c.NetHTTP = true; return c }(), ""},
		{"fast", map[string]string{echo.EnvHTTPServer: "fast"}, def, ""},
		{"bad server", map[string]string{echo.EnvHTTPServer: "nginx"}, def, echo.EnvHTTPServer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := echo.ServerConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestServerSpeaksH2C(t *testing.T) {
	srv := newServer(t)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 10 * time.Second}
	resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("h2"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(got) != "h2" {
		t.Fatalf("got %s %q, want HTTP/2 \"h2\"", resp.Proto, got)
	}
}

// The router sends a request where the ServeMux would: every path below
// goes to the same handler (and pattern) with and without the shortcut,
// and the answers are the same.
func TestRouterMatchesServeMux(t *testing.T) {
	h := echo.NewHandler(wasisock.Info{}, nil)
	mux := echo.MuxOf(h)
	for _, target := range []string{
		"/", "/x", "/a/b/c", "/healthz", "/listener", "/healthz/", "/a//b", "/a/./b", "/a/../b",
		"/.", "/..", "/a/.", "/a/..", "/.x", "/..x", "/a.b/c..d", "/%41", "/a%2Fb", "/~u_1-2",
		"/a/", "/HEALTHZ", "/listener/x",
	} {
		for _, method := range []string{"GET", "POST", "HEAD", "CONNECT"} {
			got := httptest.NewRecorder()
			h.ServeHTTP(got, httptest.NewRequest(method, target, strings.NewReader("body")))
			want := httptest.NewRecorder()
			mux.ServeHTTP(want, httptest.NewRequest(method, target, strings.NewReader("body")))
			if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Location") != want.Header().Get("Location") {
				t.Errorf("%s %s: router %d %q %q, ServeMux %d %q %q", method, target,
					got.Code, got.Body, got.Header().Get("Location"), want.Code, want.Body, want.Header().Get("Location"))
			}
		}
	}
}
