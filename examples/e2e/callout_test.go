//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// upstreams are every upstream the callout guest reaches in one test.
type upstreams struct {
	http, https  *httpUpstream
	ca           *testCA
	echo4, echo6 *echoUpstream // echo6 is nil without IPv6 loopback
	pg           *postgres
	redis        *redisServer
	// closedPort is a loopback port nothing listens on and no pattern
	// allows.
	closedPort int
}

func startUpstreams(t *testing.T) *upstreams {
	t.Helper()
	u := &upstreams{pg: startPostgres(t), redis: startRedis(t), ca: newTestCA(t)}
	u.http = startHTTP(t, nil)
	u.https = startHTTP(t, &u.ca.server)
	var ok bool
	if u.echo4, ok = startEcho(t, "tcp4"); !ok {
		t.Fatal("no IPv4 loopback")
	}
	if u.echo6, ok = startEcho(t, "tcp6"); !ok {
		t.Log("no IPv6 loopback here: the IPv6 case is left out")
	}
	u.closedPort = freePort(t)
	return u
}

// httpsURL is the HTTPS upstream's URL by the name localhost, which the
// guest resolves through the host.
func (u *upstreams) httpsURL(path string) string {
	_, port, _ := net.SplitHostPort(u.https.addr)
	return "https://localhost:" + port + path
}

// allowDial is one --allow-dial pattern for each upstream: addresses, and
// the name localhost on the HTTPS upstream's port.
func (u *upstreams) allowDial() []string {
	_, httpsPort, _ := net.SplitHostPort(u.https.addr)
	allow := []string{u.http.addr, "localhost:" + httpsPort, u.echo4.addr, "127.0.0.1:" + strconv.Itoa(u.pg.port), u.redis.addr}
	if u.echo6 != nil {
		allow = append(allow, u.echo6.addr)
	}
	return allow
}

// serveCallout serves the callout guest on engine with the upstreams'
// environment and the given dial patterns.
func (u *upstreams) serveCallout(t *testing.T, engine string, allow []string) *server {
	t.Helper()
	args := []string{"--dir", u.ca.dir + ":/certs:ro", "--env", "SSL_CERT_FILE=/certs/ca.pem",
		"--env", "DATABASE_URL=" + u.pg.url(), "--env", "REDIS_URL=" + u.redis.url()}
	for _, a := range allow {
		args = append(args, "--allow-dial", a)
	}
	return serve(t, engine, append(args, bins.calloutWasm)...)
}

// answer is one decoded JSON answer of the callout guest.
type answer struct {
	status int
	fields map[string]any
}

// call requests path from s and decodes its JSON answer.
func call(t *testing.T, s *server, path string) answer {
	t.Helper()
	status, body := s.get(t, path)
	a := answer{status: status}
	if err := json.Unmarshal(body, &a.fields); err != nil {
		t.Fatalf("%s: GET %s: %d %q is not JSON: %v", s.name, path, status, body, err)
	}
	return a
}

// callAll requests each path from s: each must answer 200. It returns
// the answers' fields.
func callAll(t *testing.T, s *server, paths ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range paths {
		a := call(t, s, p)
		if a.status != 200 {
			t.Fatalf("GET %s: status %d: %v", p, a.status, a.fields)
		}
		out = append(out, a.fields)
	}
	return out
}

func (a answer) str(key string) string {
	s, _ := a.fields[key].(string)
	return s
}

// calloutCase is one request (or a few) to the callout guest and what the
// answers must be where dials are allowed: check returns the part of the
// answers that must be the same on every target (native and each engine).
type calloutCase struct {
	name  string
	check func(t *testing.T, s *server, u *upstreams) any
}

// loopbackPort checks that addr is a loopback address with a port, as a
// connection's LocalAddr must be.
func loopbackPort(t *testing.T, what, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil || !ip.IsLoopback() || port == "0" || port == "" {
		t.Errorf("%s %q: want a loopback address with a port", what, addr)
	}
}

var calloutCases = []calloutCase{
	{"http keep-alive", func(t *testing.T, s *server, u *upstreams) any {
		return fetchKeptAlive(t, s, u.http, "http://"+u.http.addr+"/hello?client="+s.name, 3)
	}},
	{"https by name, the guest's TLS", func(t *testing.T, s *server, u *upstreams) any {
		return fetchKeptAlive(t, s, u.https, u.httpsURL("/hello?client="+s.name), 2)
	}},
	{"tcp: addresses, CloseWrite, deadline (IPv4)", func(t *testing.T, s *server, u *upstreams) any {
		return tcpCase(t, s, u.echo4)
	}},
	{"tcp: addresses, CloseWrite, deadline (IPv6)", func(t *testing.T, s *server, u *upstreams) any {
		if u.echo6 == nil {
			return "no IPv6 loopback"
		}
		return tcpCase(t, s, u.echo6)
	}},
	{"postgres with pgx", func(t *testing.T, s *server, u *upstreams) any {
		out := callAll(t, s, "/pg?a=2&b=40", "/pg?a=-5&b=3")
		if out[0]["sum"] != 42.0 {
			t.Errorf("2 + 40 = %v", out[0])
		}
		return out
	}},
	{"redis with go-redis", func(t *testing.T, s *server, u *upstreams) any {
		path := "/redis?key=e2e:" + s.name + "&value=v1"
		out := callAll(t, s, path, path)
		if out[1]["count"] != 2.0 {
			t.Errorf("second INCR: %v, want 2", out[1])
		}
		return out
	}},
	{"lookup by the host", func(t *testing.T, s *server, u *upstreams) any {
		a := call(t, s, "/lookup?host=localhost")
		addrs, _ := a.fields["addrs"].([]any)
		var got []string
		for _, x := range addrs {
			got = append(got, x.(string))
		}
		slices.Sort(got)
		if a.status != 200 || !slices.Contains(got, "127.0.0.1") {
			t.Errorf("localhost: %d %v, want 127.0.0.1 among the addresses", a.status, a.fields)
		}
		return got
	}},
	{"timeout cancels the request", func(t *testing.T, s *server, u *upstreams) any {
		before := u.http.cancelledSlow()
		began := time.Now()
		a := call(t, s, "/fetch?timeout=300ms&url="+url.QueryEscape("http://"+u.http.addr+"/slow"))
		took := time.Since(began)
		if a.status != 502 || !strings.Contains(a.str("error"), "context deadline exceeded") {
			t.Errorf("answer %d %v: want 502 and context deadline exceeded", a.status, a.fields)
		}
		if took >= slowFor/2 {
			t.Errorf("the request took %s: the timeout did not end it", took)
		}
		if !waitFor(context.Background(), 10*time.Second, func() bool { return u.http.cancelledSlow() > before }) {
			t.Error("the upstream never saw the request go away: the connection was not closed on the timeout")
		}
		return a.status
	}},
}

// fetchKeptAlive fetches target n times through s: each must succeed,
// and all of them come to up on one connection, the first a new one and
// the others reusing it.
func fetchKeptAlive(t *testing.T, s *server, up *httpUpstream, target string, n int) any {
	var reused []bool
	var first answer
	for i := range n {
		a := call(t, s, "/fetch?url="+url.QueryEscape(target))
		if a.status != 200 {
			t.Fatalf("status %d: %v", a.status, a.fields)
		}
		loopbackPort(t, "local address", a.str("local"))
		reused = append(reused, a.fields["reused"] == true)
		if i == 0 {
			first = a
		}
	}
	if got := up.connsOf(s.name); got != 1 {
		t.Errorf("%d requests came on %d connections to the upstream, want 1 (kept alive)", n, got)
	}
	return map[string]any{"status": first.fields["status"], "body": first.str("body"), "proto": first.str("proto"),
		"tls": first.fields["tls"], "remote": first.str("remote"), "reused": reused}
}

// tcpCase runs GET /tcp against echo.
func tcpCase(t *testing.T, s *server, echo *echoUpstream) any {
	const payload = "half-closed payload"
	a := call(t, s, "/tcp?send="+url.QueryEscape(payload)+"&addr="+url.QueryEscape(echo.addr))
	if a.status != 200 {
		t.Fatalf("status %d: %v", a.status, a.fields)
	}
	loopbackPort(t, "local address", a.str("local"))
	if a.str("remote") != echo.addr {
		t.Errorf("remote address %q, want %s", a.str("remote"), echo.addr)
	}
	if a.str("echoed") != payload {
		t.Errorf("echoed %q after CloseWrite, want %q", a.str("echoed"), payload)
	}
	ms, _ := a.fields["deadline_ms"].(float64)
	if a.fields["deadline_timeout"] != true || ms < 150 || ms > 10_000 {
		t.Errorf("read past a 200 ms deadline: timeout %v after %v ms, want os.ErrDeadlineExceeded after about 200 ms", a.fields["deadline_timeout"], ms)
	}
	return map[string]any{"network": a.str("network"), "remote": a.str("remote"), "echoed": a.str("echoed"), "deadline_timeout": a.fields["deadline_timeout"]}
}

// TestCallout runs every case on the callout guest natively and on each
// engine with the matching --allow-dial patterns, and checks that each
// answers the same; then on each engine without any --allow-dial, where
// every call out fails with a permission error naming the address (or a
// name not found), and the host logs it once.
func TestCallout(t *testing.T) {
	u := startUpstreams(t)
	results := map[string]map[string]any{}
	run := func(t *testing.T, s *server) {
		results[s.name] = map[string]any{}
		for _, c := range calloutCases {
			t.Run(c.name, func(t *testing.T) { results[s.name][c.name] = c.check(t, s, u) })
		}
	}
	t.Run("native", func(t *testing.T) {
		run(t, serveNative(t, bins.calloutNative, "SSL_CERT_FILE="+filepath.Join(u.ca.dir, "ca.pem"),
			"DATABASE_URL="+u.pg.url(), "REDIS_URL="+u.redis.url()))
	})
	for _, engine := range engines {
		t.Run(engine+"/allowed", func(t *testing.T) {
			s := u.serveCallout(t, engine, u.allowDial())
			run(t, s)
			if diff := cmp.Diff(results["native"], results[s.name]); diff != "" {
				t.Errorf("answers differ from the native build's (-native +%s):\n%s", engine, diff)
			}
			// A port no pattern names is refused, with the pattern to add.
			closed := "127.0.0.1:" + strconv.Itoa(u.closedPort)
			a := call(t, s, "/fetch?url="+url.QueryEscape("http://"+closed+"/"))
			wantDenied(t, a, closed)
			if strings.Contains(s.logs.String(), "denied by default") {
				t.Errorf("serve with --allow-dial warned that dials are denied by default:\n%s", s.logs)
			}
		})
		t.Run(engine+"/denied", func(t *testing.T) { testCalloutDenied(t, u, engine) })
	}
}

// wantDenied checks a 502 answer whose error is the host's refusal of
// addr, with the pattern that would allow it.
func wantDenied(t *testing.T, a answer, addr string) {
	t.Helper()
	msg := a.str("error")
	for _, want := range []string{"permission denied", "dial policy does not allow " + addr, "--allow-dial " + addr} {
		if a.status != 502 || !strings.Contains(msg, want) {
			t.Errorf("answer %d %q: want 502 with %q", a.status, msg, want)
		}
	}
}

// testCalloutDenied serves the callout guest on engine without any
// --allow-dial: each upstream is refused in the guest with the address,
// the name lookup finds nothing, and the host warns once that outbound
// connections are denied by default and logs each refused address once,
// however often the guest retried it.
func testCalloutDenied(t *testing.T, u *upstreams, engine string) {
	s := u.serveCallout(t, engine, nil)
	for range 2 {
		wantDenied(t, call(t, s, "/fetch?url="+url.QueryEscape("http://"+u.http.addr+"/hello")), u.http.addr)
	}
	wantDenied(t, call(t, s, "/tcp?addr="+url.QueryEscape(u.echo4.addr)), u.echo4.addr)
	pgAddr := "127.0.0.1:" + strconv.Itoa(u.pg.port)
	wantDenied(t, call(t, s, "/pg?a=1&b=2"), pgAddr)
	wantDenied(t, call(t, s, "/redis?key=k&value=v"), u.redis.addr) // go-redis dials 5 times
	for _, path := range []string{"/fetch?url=" + url.QueryEscape(u.httpsURL("/hello")), "/lookup?host=localhost"} {
		a := call(t, s, path)
		if a.status != 502 || !strings.Contains(a.str("error"), "lookup localhost: no such host (the host resolves only the names its dial policy allows") {
			t.Errorf("GET %s: %d %q: want the lookup of localhost not found, saying why", path, a.status, a.str("error"))
		}
	}
	logs := s.logs.String()
	if n := strings.Count(logs, "denied by default"); n != 1 || !strings.Contains(logs, "--allow-dial HOST:PORT") {
		t.Errorf("%d default-deny warnings, want 1 that says how to allow dials:\n%s", n, logs)
	}
	for _, addr := range []string{u.http.addr, u.echo4.addr, pgAddr, u.redis.addr} {
		if n := strings.Count(logs, "addr="+addr+" "); n != 1 || !strings.Contains(logs, `allow_with="--allow-dial `+addr+`"`) {
			t.Errorf("%d denial lines for %s, want 1 with the pattern that allows it:\n%s", n, addr, logs)
		}
	}
	if !strings.Contains(logs, "name=localhost") {
		t.Errorf("the refused lookup of localhost is not logged:\n%s", logs)
	}
}
