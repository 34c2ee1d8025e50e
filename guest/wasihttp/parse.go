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

// scanHead finds the end of the request head at the start of buf: the
// index just past its blank line. Every line must end in CRLF and hold no
// other CR; anything else (bare LF, a lone CR, an empty request line) is
// net/http's to answer.
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
		if len(line) == 0 {
			if i == 0 {
				return 0, headFallback // empty request line
			}
			return i + j + 1, headParsed
		}
		i += j + 1
	}
}

// parseHead parses the complete head buf (as scanHead delimited it, blank
// line included) into a request exactly as net/http's server would, or
// says headFallback for anything outside the plain subset it serves:
// origin-form targets, HTTP/1.0 and 1.1, token header names, visible
// header values, at most one Content-Length, Transfer-Encoding exactly
// chunked, Expect only 100-continue. Errors and rare forms are left to
// net/http so that their answers are net/http's own.
func parseHead(buf []byte, r *request) headStatus {
	eol := bytes.IndexByte(buf, '\r')
	line := buf[:eol]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return headFallback
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return headFallback
	}
	method, target, proto := line[:sp1], rest[:sp2], rest[sp2+1:]
	var minor int
	switch string(proto) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
		minor = 0
	default:
		return headFallback
	}
	for _, b := range method {
		if !isTokenByte(b) {
			return headFallback
		}
	}
	if target[0] != '/' {
		return headFallback // absolute-form, authority-form (CONNECT), asterisk-form
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return headFallback
		}
	}
	methodStr := internMethod(method)
	if methodStr == "CONNECT" || methodStr == "PRI" {
		return headFallback
	}
	targetStr := string(target)
	u, err := url.ParseRequestURI(targetStr)
	if err != nil {
		return headFallback
	}

	// Header lines.
	lines := buf[eol+2 : len(buf)-2]
	n := bytes.Count(lines, crlf)
	strs := make([]string, n)
	h := make(http.Header, n)
	for len(lines) > 0 {
		i := bytes.Index(lines, crlf)
		hl := lines[:i]
		lines = lines[i+2:]
		colon := bytes.IndexByte(hl, ':')
		if colon <= 0 {
			return headFallback // no name, or a folded line (it starts with SP/HTAB)
		}
		name := hl[:colon]
		for _, b := range name {
			if !isTokenByte(b) {
				return headFallback
			}
		}
		v := hl[colon+1:]
		for _, b := range v {
			if b < ' ' && b != '\t' || b == 0x7f {
				return headFallback
			}
		}
		v = trimOWSBytes(v)
		key := canonicalKey(name)
		value := string(v)
		if vv := h[key]; vv == nil {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = value
			h[key] = vv
		} else {
			h[key] = append(vv, value)
		}
	}

	r.tmpl = http.Request{
		Method:     methodStr,
		URL:        u,
		Proto:      string(proto),
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		RequestURI: targetStr,
	}
	req := &r.tmpl
	if len(h["Upgrade"]) > 0 || len(h["Trailer"]) > 0 {
		return headFallback
	}
	hosts := h["Host"]
	if len(hosts) != 1 || !validHost(hosts[0]) {
		return headFallback
	}
	req.Host = hosts[0]
	if hp, ok := h["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	conn := h["Connection"]
	hasClose := headerValuesContainToken(conn, "close")
	if minor == 0 {
		req.Close = hasClose || !headerValuesContainToken(conn, "keep-alive")
	} else {
		req.Close = hasClose
	}

	r.chunked = false
	if te, ok := h["Transfer-Encoding"]; ok {
		if minor == 0 || len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			return headFallback
		}
		r.chunked = true
		delete(h, "Transfer-Encoding")
	}
	cls := h["Content-Length"]
	switch {
	case len(cls) > 1, len(cls) == 1 && r.chunked:
		return headFallback
	case len(cls) == 1:
		cl := cls[0]
		if cl == "" || cl[0] < '0' || cl[0] > '9' {
			return headFallback
		}
		n, err := strconv.ParseUint(cl, 10, 63)
		if err != nil {
			return headFallback
		}
		req.ContentLength = int64(n)
	case r.chunked:
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}

	r.expectContinue = false
	if ex := h["Expect"]; len(ex) > 0 {
		if len(ex) > 1 || !hasToken(ex[0], "100-continue") {
			return headFallback // 417, net/http's answer
		}
		r.expectContinue = minor == 1 && req.ContentLength != 0
	}
	delete(h, "Host")
	r.req = req
	r.wants10KeepAlive = minor == 0 && hasToken(first(h["Connection"]), "keep-alive")
	r.wantsClose = req.Close || hasToken(first(h["Connection"]), "close")
	return headParsed
}

var crlf = []byte("\r\n")

func first(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

// commonHeaders are canonical names interned so that a request naming
// them allocates no key.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
		"Cookie", "Date", "Expect", "Host", "If-Modified-Since", "If-None-Match", "Origin",
		"Pragma", "Referer", "Transfer-Encoding", "Upgrade", "User-Agent", "Trailer",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "X-Real-Ip",
	} {
		m[k] = k
	}
	return m
}()

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a name of token
// bytes.
func canonicalKey(name []byte) string {
	if k, ok := commonHeaders[string(name)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// internMethod returns method as a string, without allocating for the
// common ones.
func internMethod(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "HEAD":
		return "HEAD"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(m)
}

func trimOWSBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
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

// isTokenByte reports whether b is a tchar of RFC 9110.
func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
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
