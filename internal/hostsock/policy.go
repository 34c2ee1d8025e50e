package hostsock

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Policy says where a guest's own sockets (the WasmEdge socket extensions:
// sock_connect, sock_bind, sock_listen, sock_send_to, sock_getaddrinfo) may
// reach. Everything is denied unless a pattern allows it; the listener the
// host preopens is not subject to it.
//
// A pattern is HOST:PORT. HOST is an IP literal (IPv6 in brackets), a host
// name, "*.domain" (any name under domain, not domain itself) or "*" (any
// address and any name); PORT is a number or "*".
type Policy struct {
	// Dial lists where the guest may connect (and send datagrams). A host
	// name also lets sock_getaddrinfo resolve that name; the addresses it
	// returns are then dialable on the pattern's port.
	Dial []string
	// Listen lists the addresses the guest may bind and listen on.
	Listen []string
	// Logger receives the denials, at most one line per address (or name)
	// and DenialLogInterval, and once a warning that outbound connections
	// are denied by default when Dial is empty; nil discards them. The
	// limits are the table's: each guest instance logs its own.
	Logger *slog.Logger
}

// DenialLogInterval is the least time between two log lines about the
// denials of one address, or one name: a guest that retries a refused
// dial in a loop logs one line a minute, which counts the others.
const DenialLogInterval = time.Minute

// maxDenialKeys bounds the addresses and names a table remembers for the
// rate limit of its denial log; denials of further ones share one line per
// DenialLogInterval, so that a guest cannot grow the host's memory by
// dialling ever new addresses.
const maxDenialKeys = 1024

// SetPolicy replaces the table's socket policy; call it before the guest
// runs. It fails, leaving the policy unchanged, when a pattern is
// malformed. A table whose policy was never set denies everything.
func (t *Table) SetPolicy(p Policy) error {
	r, err := p.parse()
	if err != nil {
		return err
	}
	r.counters = &t.counters
	t.policy = r
	return nil
}

// Check reports the first malformed pattern of p, so that a caller can
// refuse it before any guest runs.
func (p Policy) Check() error {
	_, err := p.parse()
	return err
}

func (p Policy) parse() (*rules, error) {
	dial, err := parsePatterns(p.Dial)
	if err != nil {
		return nil, fmt.Errorf("dial pattern: %w", err)
	}
	listen, err := parsePatterns(p.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen pattern: %w", err)
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &rules{dial: dial, listen: listen, logger: logger, denials: newDenialLog()}, nil
}

// rules is a parsed Policy and what getaddrinfo learnt under it.
type rules struct {
	dial, listen patternSet
	logger       *slog.Logger
	// counters, when set, count the denials.
	counters *counters
	// denials rate-limits the denial log.
	denials *denialLog
}

// rules returns the table's policy: one that denies everything if it was
// never set.
func (t *Table) rules() *rules {
	if t.policy == nil {
		t.policy = &rules{logger: slog.New(slog.DiscardHandler), counters: &t.counters, denials: newDenialLog()}
	}
	return t.policy
}

// count adds one to the counter which picks from r's counters.
func (r *rules) count(which func(*counters) *atomic.Uint64) {
	if r.counters != nil {
		which(r.counters).Add(1)
	}
}

// allowDial reports whether the guest may connect or send to ap, and logs
// a denial.
func (r *rules) allowDial(op string, ap netip.AddrPort) bool {
	if r.dial.allows(ap) {
		return true
	}
	r.count(func(c *counters) *atomic.Uint64 { return &c.dials })
	addr := ap.String()
	r.warnDefaultDeny("first_dial", addr)
	r.logDenial("dial "+addr, "guest socket denied by the dial policy", "op", op, "addr", addr, "allow_with", "--allow-dial "+addr)
	return false
}

// allowListen reports whether the guest may bind or listen on ap, and logs
// a denial.
func (r *rules) allowListen(op string, ap netip.AddrPort) bool {
	if r.listen.allows(ap) {
		return true
	}
	r.count(func(c *counters) *atomic.Uint64 { return &c.listens })
	addr := ap.String()
	r.logDenial("listen "+addr, "guest socket denied by the listen policy", "op", op, "addr", addr, "allow_with", "--allow-listen "+addr)
	return false
}

// allowName reports whether the guest may resolve name: some Dial pattern
// allows it, or a Listen pattern names it (a Listen "*" does not let the
// guest look names up). It logs a denial.
func (r *rules) allowName(name string) bool {
	if r.dial.namesHost(name, true) || r.listen.namesHost(name, false) {
		return true
	}
	r.count(func(c *counters) *atomic.Uint64 { return &c.lookup })
	r.warnDefaultDeny("first_lookup", name)
	r.logDenial("lookup "+canonicalName(name), "guest name lookup denied: no dial or listen pattern names it",
		"op", "getaddrinfo", "name", name, "allow_with", "--allow-dial "+name+":PORT")
	return false
}

// warnDefaultDeny logs, at the first denied dial or name lookup of a
// table whose policy has no dial pattern at all, that outbound
// connections are denied by default and how to allow them: the usual
// cause is a guest that calls out served without --allow-dial. what and
// value name the destination (first_dial and an address, or first_lookup
// and a name).
func (r *rules) warnDefaultDeny(what, value string) {
	if len(r.dial.patterns) > 0 || !r.denials.firstDefaultDeny() {
		return
	}
	r.logger.Warn("guest outbound connections are denied by default: serve was given no --allow-dial; "+
		"allow each destination with --allow-dial HOST:PORT (repeatable; HOST may be a name, *.domain or *)",
		what, value)
}

// logDenial logs msg with args for a denial of key (a policy and an
// address or name), at most once per DenialLogInterval; a line after
// others were held back says how many with "suppressed".
func (r *rules) logDenial(key, msg string, args ...any) {
	ok, suppressed := r.denials.admit(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.logger.Warn(msg, args...)
}

// denialLog is the state of a table's denial log: when each address was
// last logged, and whether the default-deny warning was given.
type denialLog struct {
	mu       sync.Mutex
	now      func() time.Time
	interval time.Duration
	last     map[string]*denialEntry
	warned   bool
}

// denialEntry is one key's last log line and the denials since.
type denialEntry struct {
	at         time.Time
	suppressed uint64
}

// overflowKey is the key that denials share once maxDenialKeys keys are
// remembered.
const overflowKey = "\x00others"

func newDenialLog() *denialLog { return newRateLog(DenialLogInterval) }

// newRateLog is a denialLog that admits a line per key at most once per
// interval: the policy's denials, and the PROXY peers' closed connections
// (proxyLog).
func newRateLog(interval time.Duration) *denialLog {
	return &denialLog{now: time.Now, interval: interval, last: map[string]*denialEntry{}}
}

// admit reports whether a denial of key is to be logged now, and how many
// denials of key were not logged since its last line.
func (d *denialLog) admit(key string) (bool, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e, ok := d.last[key]
	if !ok && len(d.last) >= maxDenialKeys {
		d.prune(now)
		if len(d.last) >= maxDenialKeys {
			key = overflowKey
			e, ok = d.last[key]
		}
	}
	if !ok {
		d.last[key] = &denialEntry{at: now}
		return true, 0
	}
	if now.Sub(e.at) < d.interval {
		e.suppressed++
		return false, 0
	}
	suppressed := e.suppressed
	e.at, e.suppressed = now, 0
	return true, suppressed
}

// prune forgets the keys whose last line is an interval old, so that
// their next denial is logged as new (the count of denials it held back
// is lost; the table's Stats count every denial).
func (d *denialLog) prune(now time.Time) {
	for k, e := range d.last {
		if now.Sub(e.at) >= d.interval {
			delete(d.last, k)
		}
	}
}

// firstDefaultDeny reports true once: at the first call.
func (d *denialLog) firstDefaultDeny() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	first := !d.warned
	d.warned = true
	return first
}

// resolved records that name resolved to addrs, so that the addresses
// are allowed on the ports of the patterns that name it.
func (r *rules) resolved(name string, addrs []netip.Addr) {
	r.dial.resolved(name, addrs)
	r.listen.resolved(name, addrs)
}

// patternSet is a list of patterns and the addresses that names among
// them resolved to.
type patternSet struct {
	patterns []pattern
	// byAddr maps an address getaddrinfo returned to the patterns whose
	// name it was returned for.
	byAddr map[netip.Addr][]int
}

func parsePatterns(texts []string) (patternSet, error) {
	var set patternSet
	var errs []error
	for _, s := range texts {
		p, err := parsePattern(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.patterns = append(set.patterns, p)
	}
	return set, errors.Join(errs...)
}

// allows reports whether ap matches a pattern, directly or through a name
// that resolved to its address.
func (s *patternSet) allows(ap netip.AddrPort) bool {
	addr := ap.Addr().Unmap()
	for _, p := range s.patterns {
		if p.matchesAddr(addr) && p.matchesPort(ap.Port()) {
			return true
		}
	}
	for _, i := range s.byAddr[addr] {
		if s.patterns[i].matchesPort(ap.Port()) {
			return true
		}
	}
	return false
}

// namesHost reports whether a pattern allows resolving name; a "*"
// pattern counts only when anyHost is true.
func (s *patternSet) namesHost(name string, anyHost bool) bool {
	name = canonicalName(name)
	for _, p := range s.patterns {
		if p.matchesName(name) && (anyHost || !p.any) {
			return true
		}
	}
	return false
}

// resolved records addrs for every pattern that names name.
func (s *patternSet) resolved(name string, addrs []netip.Addr) {
	name = canonicalName(name)
	for i, p := range s.patterns {
		if !p.matchesName(name) || p.any {
			continue // "*" already allows every address
		}
		if s.byAddr == nil {
			s.byAddr = map[netip.Addr][]int{}
		}
		for _, a := range addrs {
			a = a.Unmap()
			if ix := s.byAddr[a]; len(ix) == 0 || ix[len(ix)-1] != i {
				s.byAddr[a] = append(ix, i)
			}
		}
	}
}

// pattern is one parsed HOST:PORT pattern.
type pattern struct {
	// any is HOST "*".
	any bool
	// addr is an IP literal HOST; invalid otherwise.
	addr netip.Addr
	// name is a host name HOST, canonical; suffix is ".domain" for
	// "*.domain".
	name, suffix string
	// port is the port; anyPort is PORT "*".
	port    uint16
	anyPort bool
}

// parsePattern parses HOST:PORT (see Policy).
func parsePattern(s string) (pattern, error) {
	host, port, err := splitPattern(s)
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: %w", s, err)
	}
	var p pattern
	switch {
	case port == "*":
		p.anyPort = true
	default:
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return pattern{}, fmt.Errorf("pattern %q: port %q: want a number from 0 to 65535 or *", s, port)
		}
		p.port = uint16(n)
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil || !strings.HasSuffix(host, "]") || !a.Is6() || a.Zone() != "" {
			return pattern{}, fmt.Errorf("pattern %q: host %q: want an IPv6 address in brackets", s, host)
		}
		p.addr = a.Unmap()
		return p, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return pattern{}, fmt.Errorf("pattern %q: put the IPv6 address in brackets: [%s]:%s", s, host, port)
		}
		p.addr = a
		return p, nil
	}
	switch {
	case host == "*":
		p.any = true
	case strings.HasPrefix(host, "*."):
		domain := canonicalName(host[2:])
		if !validName(domain) {
			return pattern{}, fmt.Errorf("pattern %q: %q is not a domain name", s, host[2:])
		}
		p.suffix = "." + domain
	default:
		name := canonicalName(host)
		if !validName(name) {
			return pattern{}, fmt.Errorf("pattern %q: host %q: want an IP address, [IPv6], a host name, *.domain or *", s, host)
		}
		p.name = name
	}
	return p, nil
}

// splitPattern splits HOST:PORT at its last colon; an IPv6 HOST must be
// in brackets.
func splitPattern(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("want HOST:PORT")
	}
	host, port = s[:i], s[i+1:]
	if host == "" || port == "" {
		return "", "", errors.New("want HOST:PORT")
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "", "", errors.New("put an IPv6 address in brackets: [addr]:port")
	}
	return host, port, nil
}

func (p pattern) matchesPort(port uint16) bool {
	return p.anyPort || p.port == port
}

// matchesAddr reports whether the pattern allows addr directly: "*" or
// the same IP literal.
func (p pattern) matchesAddr(addr netip.Addr) bool {
	return p.any || (p.addr.IsValid() && p.addr == addr)
}

// matchesName reports whether the pattern allows resolving the canonical
// name.
func (p pattern) matchesName(name string) bool {
	switch {
	case p.any:
		return true
	case p.suffix != "":
		return len(name) > len(p.suffix) && strings.HasSuffix(name, p.suffix)
	default:
		return p.name != "" && p.name == name
	}
}

// canonicalName lowercases a host name and drops a trailing dot.
func canonicalName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// validName reports whether name is a DNS host name: dot-separated labels
// of letters, digits, '-' and '_', each 1 to 63 bytes, 253 bytes at most.
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
