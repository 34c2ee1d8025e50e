package hostsock

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParsePatternErrors(t *testing.T) {
	for _, tc := range []struct {
		pattern, want string
	}{
		{"", "want HOST:PORT"},
		{"example.com", "want HOST:PORT"},
		{":80", "want HOST:PORT"},
		{"1.2.3.4:", "want HOST:PORT"},
		{"1.2.3.4:65536", "want a number"},
		{"1.2.3.4:-1", "want a number"},
		{"1.2.3.4:http", "want a number"},
		{"::1:80", "brackets"},
		{"[::1:80", "brackets"},
		{"[1.2.3.4]:80", "IPv6 address in brackets"},
		{"[fe80::1%eth0]:80", "IPv6 address in brackets"},
		{"[::ffff:1.2.3.4]x:80", "IPv6 address in brackets"},
		{"bad host:80", "want an IP address"},
		{"a..b:80", "want an IP address"},
		{"-*.example.com:80", "want an IP address"},
		{"*.:80", "not a domain name"},
		{"*.*.example.com:80", "not a domain name"},
		{strings.Repeat("a", 64) + ".example:80", "want an IP address"},
	} {
		if _, err := parsePattern(tc.pattern); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parsePattern(%q) = %v, want an error containing %q", tc.pattern, err, tc.want)
		}
	}
}

func TestPolicyAllows(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name     string
		patterns []string
		addr     netip.AddrPort
		want     bool
	}{
		{"no patterns", nil, ap("127.0.0.1:80"), false},
		{"same address and port", []string{"127.0.0.1:80"}, ap("127.0.0.1:80"), true},
		{"other port", []string{"127.0.0.1:80"}, ap("127.0.0.1:81"), false},
		{"other address", []string{"127.0.0.1:80"}, ap("127.0.0.2:80"), false},
		{"any port", []string{"127.0.0.1:*"}, ap("127.0.0.1:65535"), true},
		{"port 0", []string{"127.0.0.1:0"}, ap("127.0.0.1:0"), true},
		{"IPv4-mapped", []string{"127.0.0.1:80"}, ap("[::ffff:127.0.0.1]:80"), true},
		{"IPv6", []string{"[::1]:443"}, ap("[::1]:443"), true},
		{"IPv6 written long", []string{"[0:0:0:0:0:0:0:1]:443"}, ap("[::1]:443"), true},
		{"IPv6 is not IPv4 loopback", []string{"[::1]:443"}, ap("127.0.0.1:443"), false},
		{"wildcard bind needs its own pattern", []string{"127.0.0.1:8080"}, ap("0.0.0.0:8080"), false},
		{"wildcard pattern", []string{"0.0.0.0:8080"}, ap("0.0.0.0:8080"), true},
		{"any host", []string{"*:443"}, ap("203.0.113.9:443"), true},
		{"any host, other port", []string{"*:443"}, ap("203.0.113.9:80"), false},
		{"everything", []string{"*:*"}, ap("[2001:db8::1]:1"), true},
		{"a name allows no address by itself", []string{"localhost:80"}, ap("127.0.0.1:80"), false},
		{"second pattern", []string{"10.0.0.1:1", "10.0.0.2:2"}, ap("10.0.0.2:2"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := parsePatterns(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := set.allows(tc.addr); got != tc.want {
				t.Errorf("%q allows %v: %v, want %v", tc.patterns, tc.addr, got, tc.want)
			}
		})
	}
}

func TestPolicyNames(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		anyHost       bool
		want          bool
	}{
		{"example.com:80", "example.com", true, true},
		{"example.com:80", "EXAMPLE.com.", true, true},
		{"Example.COM.:80", "example.com", true, true},
		{"example.com:80", "www.example.com", true, false},
		{"*.example.com:80", "www.example.com", true, true},
		{"*.example.com:80", "a.b.example.com", true, true},
		{"*.example.com:80", "example.com", true, false},
		{"*.example.com:80", "badexample.com", true, false},
		{"*:80", "anything.example", true, true},
		{"*:80", "anything.example", false, false},
		{"127.0.0.1:80", "localhost", true, false},
	} {
		set, err := parsePatterns([]string{tc.pattern})
		if err != nil {
			t.Fatal(err)
		}
		if got := set.namesHost(tc.name, tc.anyHost); got != tc.want {
			t.Errorf("%q names %q (any host %v): %v, want %v", tc.pattern, tc.name, tc.anyHost, got, tc.want)
		}
	}
}

// TestPolicyResolved checks that an address returned for an allowed name
// is allowed on that pattern's port only, and for no other name's pattern.
func TestPolicyResolved(t *testing.T) {
	set, err := parsePatterns([]string{"*.example.com:443", "db.internal:5432", "*:53"})
	if err != nil {
		t.Fatal(err)
	}
	set.resolved("api.example.com", []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.2")})
	set.resolved("api.example.com", []netip.Addr{netip.MustParseAddr("192.0.2.1")}) // again: no duplicate
	set.resolved("other.example.org", []netip.Addr{netip.MustParseAddr("192.0.2.3")})
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.1:443", true},
		{"192.0.2.2:443", true},
		{"192.0.2.1:5432", false},
		{"192.0.2.1:80", false},
		{"192.0.2.3:443", false},
		{"192.0.2.3:53", true}, // through "*:53", not through the lookup
	} {
		if got := set.allows(netip.MustParseAddrPort(tc.addr)); got != tc.want {
			t.Errorf("allows %s: %v, want %v", tc.addr, got, tc.want)
		}
	}
	if n := len(set.byAddr[netip.MustParseAddr("192.0.2.1")]); n != 1 {
		t.Errorf("192.0.2.1 recorded for %d patterns, want 1", n)
	}
}

func TestSetPolicy(t *testing.T) {
	var logs bytes.Buffer
	tbl := &Table{}
	if tbl.rules().allowDial("connect", netip.MustParseAddrPort("127.0.0.1:80")) {
		t.Error("a table without a policy allows a dial")
	}
	err := tbl.SetPolicy(Policy{
		Dial:   []string{"127.0.0.1:80"},
		Listen: []string{"[::1]:8080"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := tbl.rules()
	if !r.allowDial("connect", netip.MustParseAddrPort("127.0.0.1:80")) || !r.allowListen("bind", netip.MustParseAddrPort("[::1]:8080")) {
		t.Error("the policy denies what it allows")
	}
	if r.allowDial("connect", netip.MustParseAddrPort("[::1]:8080")) || r.allowListen("bind", netip.MustParseAddrPort("127.0.0.1:80")) {
		t.Error("dial and listen patterns are mixed up")
	}
	if r.allowName("example.com") {
		t.Error("a name no pattern names may be looked up")
	}
	for _, want := range []string{"op=connect addr=[::1]:8080", "op=bind addr=127.0.0.1:80", "op=getaddrinfo name=example.com"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	err = tbl.SetPolicy(Policy{Dial: []string{"127.0.0.1:80", "nope"}, Listen: []string{"x:y"}})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("SetPolicy with a malformed dial pattern: %v", err)
	}
	if !tbl.rules().allowDial("connect", netip.MustParseAddrPort("127.0.0.1:80")) {
		t.Error("a failed SetPolicy changed the policy")
	}
	if err := tbl.SetPolicy(Policy{Listen: []string{"x:y"}}); err == nil || !strings.Contains(err.Error(), "listen pattern") {
		t.Errorf("SetPolicy with a malformed listen pattern: %v", err)
	}
}

// testClock is a clock a test moves by hand.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time      { return c.t }
func (c *testClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestClock() *testClock           { return &testClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }
func countLines(logs, substr string) int { return strings.Count(logs, substr) }

// policyWithLog is a table with dial patterns, logging to logs on clock.
func policyWithLog(t *testing.T, dial []string, logs *bytes.Buffer, clock *testClock) (*Table, *rules) {
	t.Helper()
	tbl := &Table{}
	if err := tbl.SetPolicy(Policy{Dial: dial, Logger: slog.New(slog.NewTextHandler(logs, nil))}); err != nil {
		t.Fatal(err)
	}
	r := tbl.rules()
	r.denials.now = clock.now
	return tbl, r
}

// TestDenialLogRateLimited checks that refused dials of one address are
// logged once per DenialLogInterval, that the next line counts the ones
// held back, that each address and each name has its own limit, and that
// the table's counters still count every denial.
func TestDenialLogRateLimited(t *testing.T) {
	var logs bytes.Buffer
	clock := newTestClock()
	tbl, r := policyWithLog(t, []string{"127.0.0.1:80"}, &logs, clock)
	a, b := netip.MustParseAddrPort("127.0.0.1:5432"), netip.MustParseAddrPort("[::1]:6379")
	for range 5 {
		r.allowDial("connect", a)
		clock.add(time.Second)
	}
	r.allowDial("connect", b)
	r.allowName("db.internal")
	r.allowName("DB.internal.") // the same name
	if n := countLines(logs.String(), "addr=127.0.0.1:5432"); n != 1 {
		t.Errorf("5 denials of one address within the interval logged %d lines, want 1:\n%s", n, logs.String())
	}
	for _, want := range []string{
		`op=connect addr=127.0.0.1:5432 allow_with="--allow-dial 127.0.0.1:5432"`,
		`addr=[::1]:6379 allow_with="--allow-dial [::1]:6379"`,
		`name=db.internal allow_with="--allow-dial db.internal:PORT"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if n := countLines(logs.String(), "guest name lookup denied"); n != 1 {
		t.Errorf("two lookups of one name logged %d lines, want 1", n)
	}
	clock.add(DenialLogInterval)
	r.allowDial("connect", a)
	if n := countLines(logs.String(), "addr=127.0.0.1:5432"); n != 2 {
		t.Errorf("a denial an interval later: %d lines, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "suppressed=4") {
		t.Errorf("the second line does not count the 4 denials held back:\n%s", logs.String())
	}
	if st := tbl.Stats(); st.DialsDenied != 7 || st.LookupsDenied != 2 {
		t.Errorf("Stats: %d dials and %d lookups denied, want 7 and 2", st.DialsDenied, st.LookupsDenied)
	}
	if strings.Contains(logs.String(), "denied by default") {
		t.Errorf("a policy with dial patterns warned that dials are denied by default:\n%s", logs.String())
	}
}

// TestDenialLogDefaultDeny checks the one warning of a policy without any
// dial pattern, at its first refused dial or lookup, whichever comes first.
func TestDenialLogDefaultDeny(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(r *rules)
		want  string
	}{
		{"dial first", func(r *rules) { r.allowDial("connect", netip.MustParseAddrPort("127.0.0.1:9300")) }, "first_dial=127.0.0.1:9300"},
		{"lookup first", func(r *rules) { r.allowName("api.example") }, "first_lookup=api.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			_, r := policyWithLog(t, nil, &logs, newTestClock())
			tc.first(r)
			for i := range 20 {
				r.allowDial("connect", netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)))
				r.allowName("other.example")
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if n := countLines(logs.String(), "denied by default"); n != 1 {
				t.Fatalf("%d default-deny warnings, want 1:\n%s", n, logs.String())
			}
			if !strings.Contains(lines[0], "denied by default") || !strings.Contains(lines[0], tc.want) ||
				!strings.Contains(lines[0], "--allow-dial HOST:PORT") {
				t.Errorf("first line %q: want the default-deny warning naming %s and how to allow it", lines[0], tc.want)
			}
		})
	}
}

// TestDenialLogBounded dials ever new addresses: the log state stays
// within maxDenialKeys, and the denials past it share one line per
// interval.
func TestDenialLogBounded(t *testing.T) {
	var logs bytes.Buffer
	clock := newTestClock()
	_, r := policyWithLog(t, []string{"127.0.0.1:1"}, &logs, clock)
	const n = 3 * maxDenialKeys
	for i := range n {
		r.allowDial("connect", netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80))
	}
	if got := len(r.denials.last); got > maxDenialKeys+1 {
		t.Errorf("%d keys remembered after %d addresses, want at most %d", got, n, maxDenialKeys+1)
	}
	if lines := countLines(logs.String(), "\n"); lines != maxDenialKeys+1 {
		t.Errorf("%d lines for %d addresses, want %d (one each up to the bound, then one shared)", lines, n, maxDenialKeys+1)
	}
	// An interval later the old keys are forgotten: new addresses get
	// lines of their own again.
	clock.add(DenialLogInterval)
	before := countLines(logs.String(), "\n")
	for i := range 10 {
		r.allowDial("connect", netip.AddrPortFrom(netip.AddrFrom4([4]byte{11, 0, 0, byte(i)}), 80))
	}
	if got := countLines(logs.String(), "\n") - before; got != 10 {
		t.Errorf("an interval later, 10 new addresses logged %d lines, want 10", got)
	}
}
