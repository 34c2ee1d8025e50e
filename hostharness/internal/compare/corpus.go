// Package compare checks that the wasm echo guest answers a corpus of
// requests exactly like the same code built natively. The corpus is data
// (corpus/corpus.json); this package sends each case to a reference server
// and to every target, normalises what legitimately differs, and reports
// case by case with a go-cmp diff for every difference.
package compare

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template"
	"time"
)

//go:embed corpus/corpus.json
var corpusJSON []byte

// Case kinds.
const (
	// KindHTTP cases go through net/http's client (HTTP/1.1 or h2c).
	KindHTTP = "http"
	// KindRaw cases write bytes on net.Dial connections and parse the
	// responses with http.ReadResponse.
	KindRaw = "raw"
)

// Case is one entry of the corpus. Fields after Kind apply to one kind.
type Case struct {
	// Name identifies the case in reports.
	Name string `json:"name"`
	// Kind is KindHTTP or KindRaw.
	Kind string `json:"kind"`
	// Doc says what the case exercises.
	Doc string `json:"doc"`
	// Long marks cases that Options.SkipLong leaves out.
	Long bool `json:"long,omitempty"`
	// Timeout bounds one run of the case on one server; 0 means 20s.
	Timeout Duration `json:"timeout,omitempty"`

	// Method, Path, Header and Body make the request of an http case.
	Method string              `json:"method,omitempty"`
	Path   string              `json:"path,omitempty"`
	Header map[string][]string `json:"header,omitempty"`
	Body   *Body               `json:"body,omitempty"`
	// H2C sends the request as unencrypted HTTP/2 with prior knowledge.
	H2C bool `json:"h2c,omitempty"`
	// Chunked hides the body length, so HTTP/1.1 sends it chunked.
	Chunked bool `json:"chunked,omitempty"`
	// ExpectContinue sends "Expect: 100-continue" and waits for the 100.
	ExpectContinue bool `json:"expect_continue,omitempty"`
	// Parallel sends that many copies of the request at once (default 1).
	Parallel int `json:"parallel,omitempty"`

	// Head is the raw bytes to send, a text/template with the functions
	// repeat, seq and hex and .BodyLen; Body (if any) follows it.
	Head string `json:"head,omitempty"`
	// Connections opens that many connections at once (default 1), each
	// running the exchange.
	Connections int `json:"connections,omitempty"`
	// Repeat runs the exchange that many times on each connection.
	Repeat int `json:"repeat,omitempty"`
	// Responses is how many responses one exchange reads (default 1).
	Responses int `json:"responses,omitempty"`
	// WriteChunk splits writes into pieces of that size, WriteDelay apart.
	WriteChunk int      `json:"write_chunk,omitempty"`
	WriteDelay Duration `json:"write_delay,omitempty"`
	// ReadChunk reads response bodies in pieces of that size, ReadDelay
	// apart, through a socket receive buffer of ReadBuffer bytes.
	ReadChunk  int      `json:"read_chunk,omitempty"`
	ReadDelay  Duration `json:"read_delay,omitempty"`
	ReadBuffer int      `json:"read_buffer,omitempty"`
	// HalfClose shuts the write side after sending.
	HalfClose bool `json:"half_close,omitempty"`
	// AbortAfter closes the connection after that many bytes of Body,
	// without reading anything.
	AbortAfter int64 `json:"abort_after,omitempty"`
	// CheckClose records whether the server closes the connection after
	// the responses.
	CheckClose bool `json:"check_close,omitempty"`
	// ThenHealthz sends GET /healthz on a new connection afterwards, to
	// show the server still serves.
	ThenHealthz bool `json:"then_healthz,omitempty"`

	head []byte
}

// Duration is a time.Duration written as a string ("5s") in JSON.
type Duration time.Duration

// UnmarshalJSON parses a time.ParseDuration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Corpus is the request corpus and the differences known to exist.
type Corpus struct {
	Cases []Case `json:"cases"`
	// Known lists differences of a target from the reference that are
	// understood: still failures, reported as SKIP(known) only under Options.AllowKnown.
	Known []Known `json:"known_differences"`
}

// Known is a known difference: cases matching the regular expression
// Cases differ on Target for the given Reason.
type Known struct {
	Target string `json:"target"`
	Cases  string `json:"cases"`
	Reason string `json:"reason"`
	re     *regexp.Regexp
}

// compile checks k and compiles its Cases pattern.
func (k *Known) compile() error {
	if k.Target == "" || k.Reason == "" {
		return fmt.Errorf("want a target, a cases regexp and a reason")
	}
	re, err := regexp.Compile(k.Cases)
	if err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	k.re = re
	return nil
}

// matches reports whether k covers case name on target.
func (k *Known) matches(target, name string) bool {
	return k.Target == target && k.re.MatchString(name)
}

// DefaultCorpus returns the corpus embedded from corpus/corpus.json.
func DefaultCorpus() (*Corpus, error) {
	return LoadCorpus(corpusJSON)
}

// LoadCorpus parses and checks a corpus in the format of corpus/corpus.json.
func LoadCorpus(data []byte) (*Corpus, error) {
	var file Corpus
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	for i := range file.Known {
		if err := file.Known[i].compile(); err != nil {
			return nil, fmt.Errorf("corpus known difference %d: %w", i, err)
		}
	}
	seen := map[string]bool{}
	for i := range file.Cases {
		c := &file.Cases[i]
		if err := c.prepare(); err != nil {
			return nil, fmt.Errorf("corpus case %d (%q): %w", i, c.Name, err)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("corpus case %d: duplicate name %q", i, c.Name)
		}
		seen[c.Name] = true
	}
	if len(file.Cases) == 0 {
		return nil, fmt.Errorf("corpus: no cases")
	}
	return &file, nil
}

// prepare checks c and expands its raw head.
func (c *Case) prepare() error {
	if c.Name == "" {
		return fmt.Errorf("no name")
	}
	if c.Body != nil {
		if err := c.Body.check(); err != nil {
			return err
		}
	}
	switch c.Kind {
	case KindHTTP:
		if c.Method == "" || c.Path == "" {
			return fmt.Errorf("http case needs method and path")
		}
		if c.Head != "" {
			return fmt.Errorf("http case with a raw head")
		}
	case KindRaw:
		if c.Head == "" {
			return fmt.Errorf("raw case needs a head")
		}
		head, err := expandHead(c.Head, c.Body.Len())
		if err != nil {
			return err
		}
		c.head = head
		if c.AbortAfter > 0 && c.AbortAfter >= c.Body.Len() {
			return fmt.Errorf("abort_after %d must be less than the body's %d bytes", c.AbortAfter, c.Body.Len())
		}
	default:
		return fmt.Errorf("kind %q: want %q or %q", c.Kind, KindHTTP, KindRaw)
	}
	return nil
}

// maxHead bounds what a raw head template may produce, so that a broken
// corpus fails with an error instead of exhausting memory.
const maxHead = 64 << 20

// headFuncs are the functions a raw head template may call.
var headFuncs = template.FuncMap{
	"repeat": func(s string, n int) (string, error) {
		if n < 0 || (len(s) > 0 && n > maxHead/len(s)) {
			return "", fmt.Errorf("repeat %d times: want 0 to %d bytes", n, maxHead)
		}
		return strings.Repeat(s, n), nil
	},
	"seq": func(n int) ([]int, error) {
		if n < 0 || n > 1<<16 {
			return nil, fmt.Errorf("seq %d: want 0 to 65536", n)
		}
		s := make([]int, n)
		for i := range s {
			s[i] = i + 1
		}
		return s, nil
	},
	"hex": func(s string) (string, error) {
		b, err := hex.DecodeString(s)
		return string(b), err
	},
}

// expandHead runs a raw head template.
func expandHead(text string, bodyLen int64) ([]byte, error) {
	tmpl, err := template.New("head").Funcs(headFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&limitedWriter{w: &buf, left: maxHead}, struct{ BodyLen int64 }{bodyLen}); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	return buf.Bytes(), nil
}

// limitedWriter fails once more than left bytes are written.
type limitedWriter struct {
	w    io.Writer
	left int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		return 0, fmt.Errorf("head longer than %d bytes", maxHead)
	}
	l.left -= len(p)
	return l.w.Write(p)
}

// timeout is how long one run of the case may take.
func (c *Case) timeout() time.Duration {
	if c.Timeout > 0 {
		return time.Duration(c.Timeout)
	}
	return 20 * time.Second
}

func atLeastOne(n int) int {
	return max(n, 1)
}
