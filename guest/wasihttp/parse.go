package wasihttp

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// headStatus says what parseHead made of the bytes it was given.
type headStatus int

const (
	// headIncomplete: no blank line yet, and nothing seen that the fast
	// path refuses; read more.
	headIncomplete headStatus = iota
	// headParsed: a request the fast path serves exactly as net/http.
	headParsed
	// headFallback: something net/http must judge (an error answer, an
	// upgrade, a rare form): hand the connection to net/http.
	headFallback
)

// request is what parseHead read from a request head, beyond the
// *http.Request itself.
type request struct {
	tmpl    http.Request // the parsed request, copied once with its context
	req     *http.Request
	chunked bool
	// expectContinue: an HTTP/1.1 request with a body that asked for 100
	// Continue.
	expectContinue   bool
	wants10KeepAlive bool
	wantsClose       bool
}

// scanHead looks at an incomplete head: every complete line must end in
// CRLF, hold no other CR and be one parseHead takes; anything else (bare
// LF, a lone CR, an empty request line, a malformed line) is net/http's
// to answer, and at once, as net/http answers a bad line as soon as it
// has it. It also finds the end of a head with bare LF line ends, so
// that such a head goes to net/http.
func scanHead(buf []byte) (end int, status headStatus) {
	i := 0
	for {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			if k := bytes.IndexByte(buf[i:], '\r'); k >= 0 && k != len(buf)-i-1 {
				return 0, headFallback // a CR not followed by LF
			}
			return 0, headIncomplete
		}
		if j == 0 || buf[i+j-1] != '\r' {
			return 0, headFallback // bare LF
		}
		line := buf[i : i+j-1]
		if bytes.IndexByte(line, '\r') >= 0 {
			return 0, headFallback
		}
		if len(line) > 0 && !lineOK(line, i == 0) {
			return 0, headFallback // net/http answers this line at once
		}
		if len(line) == 0 {
			if i == 0 {
				return 0, headFallback // empty request line
			}
			return i + j + 1, headParsed
		}
		i += j + 1
	}
}

// lineOK reports whether a complete line of a head is one parseHead
// takes: for the request line, METHOD SP /TARGET SP HTTP/1.x; for a
// header line, NAME ":" VALUE.
func lineOK(line []byte, requestLine bool) bool {
	i := 0
	for i < len(line) && tokenTable[line[i]] {
		i++
	}
	if i == 0 || i == len(line) {
		return false
	}
	if !requestLine {
		if line[i] != ':' {
			return false
		}
		for _, b := range line[i+1:] {
			if !valueTable[b] {
				return false
			}
		}
		return true
	}
	rest := line[i:]
	if rest[0] != ' ' || len(rest) < 11 || rest[1] != '/' {
		return false
	}
	target := rest[1 : len(rest)-9]
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return false
		}
	}
	tail := string(rest[len(rest)-9:])
	return tail == " HTTP/1.1" || tail == " HTTP/1.0"
}

// parseHead parses the complete head buf (up to and including its blank
// line) into a request exactly as net/http's server would, or says
// headFallback for anything outside the plain subset it serves:
// origin-form targets, HTTP/1.0 and 1.1, CRLF line ends, token header
// names, visible header values, one Host, at most one Content-Length,
// Transfer-Encoding exactly chunked, Expect only 100-continue. Errors and
// rare forms are left to net/http so that their answers are net/http's
// own. It reads buf once, left to right, and every string it makes is a
// part of one copy of the head.
func parseHead(buf []byte, r *request) headStatus {
	s := string(buf)
	// The request line. Every loop below stops at the CR of the final
	// CRLF CRLF at the latest: the tables refuse CR.
	i := 0
	for tokenTable[s[i]] {
		i++
	}
	if i == 0 || s[i] != ' ' {
		return headFallback
	}
	method := s[:i]
	i++
	t0 := i
	for s[i] > ' ' && s[i] < 0x7f {
		i++
	}
	if i == t0 || s[i] != ' ' || s[t0] != '/' || len(s)-i < 11 {
		return headFallback // absolute-form, authority-form (CONNECT), asterisk-form, ...
	}
	target := s[t0:i]
	var proto string
	minor := 1
	switch s[i+1 : i+11] {
	case "HTTP/1.1\r\n":
		proto = "HTTP/1.1"
	case "HTTP/1.0\r\n":
		proto, minor = "HTTP/1.0", 0
	default:
		return headFallback
	}
	i += 11
	switch method {
	case "CONNECT", "PRI":
		return headFallback
	}

	// Header lines, gathered before the map is made at its size.
	var (
		small                    [16]field
		fields                   = small[:0]
		host, cl, te, expect     string
		pragma                   string
		nHost, nCL, nTE, nExpect int
		hasConn, hasCC           bool
	)
	for s[i] != '\r' {
		n0 := i
		for tokenTable[s[i]] {
			i++
		}
		if i == n0 || s[i] != ':' {
			return headFallback // no name, a folded line, a space before the colon
		}
		name := s[n0:i]
		i++
		for s[i] == ' ' || s[i] == '\t' {
			i++
		}
		v0 := i
		for valueTable[s[i]] {
			i++
		}
		if s[i] != '\r' || s[i+1] != '\n' {
			return headFallback // a control byte, a bare LF or a lone CR
		}
		v1 := i
		for v1 > v0 && (s[v1-1] == ' ' || s[v1-1] == '\t') {
			v1--
		}
		i += 2
		key, value := canonicalKey(name), s[v0:v1]
		switch key {
		case "Host":
			nHost++
			host = value
			continue // net/http keeps it in Request.Host only
		case "Transfer-Encoding":
			nTE++
			te = value
			continue // net/http removes it once read
		case "Content-Length":
			nCL++
			cl = value
		case "Expect":
			nExpect++
			expect = value
		case "Connection":
			hasConn = true
		case "Pragma":
			if pragma == "" {
				pragma = value + "\x00" // set, even when empty
			}
		case "Cache-Control":
			hasCC = true
		case "Upgrade", "Trailer":
			return headFallback
		}
		fields = append(fields, field{key, value})
	}
	if s[i+1] != '\n' || i+2 != len(s) {
		return headFallback
	}
	if nHost != 1 || !validHost(host) {
		return headFallback
	}

	u, ok := requestURL(target)
	if !ok {
		return headFallback
	}
	h := make(http.Header, len(fields)+1)
	strs := make([]string, len(fields))
	for _, f := range fields {
		if vv := h[f.key]; vv == nil {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = f.value
			h[f.key] = vv
		} else {
			h[f.key] = append(vv, f.value)
		}
	}
	if pragma == "no-cache\x00" && !hasCC {
		h["Cache-Control"] = []string{"no-cache"}
	}
	r.tmpl = http.Request{
		Method:     method,
		URL:        u,
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Host:       host,
		RequestURI: target,
	}
	req := &r.tmpl
	var conn []string
	if hasConn {
		conn = h["Connection"]
	}
	hasClose := headerValuesContainToken(conn, "close")
	if minor == 0 {
		req.Close = hasClose || !headerValuesContainToken(conn, "keep-alive")
	} else {
		req.Close = hasClose
	}

	r.chunked = false
	if nTE > 0 {
		if minor == 0 || nTE != 1 || nCL > 0 || !asciiEqualFold(te, "chunked") {
			return headFallback
		}
		r.chunked = true
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	switch {
	case nCL > 1:
		return headFallback
	case nCL == 1:
		n, ok := parseContentLength(cl)
		if !ok {
			return headFallback
		}
		req.ContentLength = n
	}

	r.expectContinue = false
	if nExpect > 0 {
		if nExpect > 1 || !hasToken(expect, "100-continue") {
			return headFallback // 417, net/http's answer
		}
		r.expectContinue = minor == 1 && req.ContentLength != 0
	}
	r.req = req
	r.wants10KeepAlive = minor == 0 && hasToken(first(conn), "keep-alive")
	r.wantsClose = req.Close || hasToken(first(conn), "close")
	return headParsed
}

// field is one header line of a request being parsed.
type field struct{ key, value string }

// parseContentLength is strconv.ParseUint(v, 10, 63), as net/http reads
// Content-Length.
func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		n, err := strconv.ParseUint(v, 10, 63)
		return int64(n), err == nil
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

// requestURL is url.ParseRequestURI(target) for an origin-form target;
// a path of unreserved characters and slashes, with a query or without,
// needs no parsing beyond splitting at the first "?".
func requestURL(target string) (*url.URL, bool) {
	path, query, hasQuery := strings.Cut(target, "?")
	simple := !(hasQuery && query == "")
	for i := 0; i < len(path) && simple; i++ {
		simple = pathTable[path[i]]
	}
	if simple {
		return &url.URL{Path: path, RawQuery: query}, true
	}
	u, err := url.ParseRequestURI(target)
	return u, err == nil
}

// byteTable is a set of bytes.
type byteTable [256]bool

func tableOf(ranges ...string) *byteTable {
	var t byteTable
	for _, r := range ranges {
		if len(r) == 3 && r[1] == '-' {
			for b := int(r[0]); b <= int(r[2]); b++ {
				t[b] = true
			}
			continue
		}
		for i := 0; i < len(r); i++ {
			t[r[i]] = true
		}
	}
	return &t
}

var (
	// tokenTable: the tchar of RFC 9110.
	tokenTable = tableOf("a-z", "A-Z", "0-9", "!#$%&'*+-.^_`|~")
	// valueTable: what textproto and net/http accept in a header value
	// (VCHAR, SP, HTAB, obs-text).
	valueTable = tableOf("\t", " -~", "\x80-\xff")
	// pathTable: unreserved characters and "/": a path that url.Parse
	// leaves as it is.
	pathTable = tableOf("a-z", "A-Z", "0-9", "-._~/")
)

var crlf = []byte("\r\n")

func first(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a name of token
// bytes; common names in their canonical spelling are returned as they
// are, without the check.
func canonicalKey(name string) string {
	switch name {
	case "Host", "Content-Length", "Content-Type", "User-Agent", "Accept", "Accept-Encoding",
		"Accept-Language", "Connection", "Cookie", "Authorization", "Cache-Control",
		"Transfer-Encoding", "Expect", "Pragma", "Referer", "Origin", "Upgrade", "Trailer",
		"If-None-Match", "If-Modified-Since", "X-Forwarded-For", "X-Forwarded-Proto",
		"X-Request-Id", "X-Real-Ip", "Content-Encoding":
		return name
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validHost is a strict subset of what net/http accepts in Host: names,
// IPv4 and bracketed IPv6 addresses, ports. Others go to net/http.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '-', b == '.', b == ':', b == '[', b == ']', b == '_':
		default:
			return false
		}
	}
	return true
}

// headerValuesContainToken is httpguts.HeaderValuesContainsToken: a
// comma-separated element of one of values equals token, ASCII case
// folded.
func headerValuesContainToken(values []string, token string) bool {
	for _, v := range values {
		for {
			elem, rest, more := strings.Cut(v, ",")
			if tokenEqual(trimOWS(elem), token) {
				return true
			}
			if !more {
				break
			}
			v = rest
		}
	}
	return false
}

func tokenEqual(t, token string) bool {
	if len(t) != len(token) {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] >= 0x80 || lowerASCII(t[i]) != lowerASCII(token[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// hasToken is net/http's: token appears in v, ASCII case folded, between
// token boundaries.
func hasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if asciiEqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool {
	return b == ' ' || b == ',' || b == '\t'
}

// asciiEqualFold is strings.EqualFold for ASCII only, as net/http
// compares protocol tokens.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lowerASCII(t[i]) {
			return false
		}
	}
	return true
}
