package compare

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Observation is what a server did for one case, in a form that compares
// with cmp.Diff once normalised.
type Observation struct {
	// Responses are the parsed responses, in request order.
	Responses []Response `json:"responses,omitempty"`
	// Got100Continue reports an interim "100 Continue" (ExpectContinue).
	Got100Continue bool `json:"got_100_continue,omitempty"`
	// Errors are client-side failures, by class (see errClass), in order.
	Errors []string `json:"errors,omitempty"`
	// Close is what followed the responses when CheckClose is set: "eof"
	// when the server closed the connection, else an error class or "data".
	Close string `json:"close,omitempty"`
	// Healthz is the answer to GET /healthz on a new connection afterwards.
	Healthz *Response `json:"healthz,omitempty"`
}

// Digest is a hex SHA-256. Diffs show it whole (see cmpOptions), not as
// a character-level edit of two unrelated hashes.
type Digest string

// cmpOptions are the go-cmp options of every comparison.
var cmpOptions = cmp.Options{cmp.Comparer(func(a, b Digest) bool { return a == b })}

// smallBody is the largest body kept verbatim in a Response.
const smallBody = 512

// Response is one parsed HTTP response. Bodies are kept verbatim up to
// smallBody bytes; all are hashed while they stream in.
type Response struct {
	Proto  string      `json:"proto"`
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	// Trailer holds trailers announced by the response.
	Trailer http.Header `json:"trailer,omitempty"`
	Body    string      `json:"body,omitempty"`
	BodyLen int64       `json:"body_len"`
	// BodySHA256 is the hex SHA-256 of the whole body.
	BodySHA256 Digest `json:"body_sha256"`
	// BodyBlocks, for bodies over one block, holds a short hash of each
	// blockSize piece, so that a diff points at the first piece that differs.
	BodyBlocks []string `json:"body_blocks,omitempty"`
	// BodyErr is the class of the error that ended the body early.
	BodyErr string `json:"body_err,omitempty"`
}

// readResponse consumes resp's body (through slow, when given) and closes it.
func readResponse(resp *http.Response, slow func(io.Reader) io.Reader) Response {
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if slow != nil {
		body = slow(body)
	}
	h := sha256.New()
	head := &prefixWriter{max: smallBody}
	blocks := &blockHasher{h: sha256.New()}
	n, err := io.Copy(io.MultiWriter(h, head, blocks), body)
	r := Response{
		Proto:      resp.Proto,
		Status:     resp.StatusCode,
		Header:     resp.Header.Clone(),
		BodyLen:    n,
		BodySHA256: Digest(hex.EncodeToString(h.Sum(nil))),
	}
	if len(resp.Trailer) > 0 {
		r.Trailer = resp.Trailer.Clone()
	}
	if n <= smallBody {
		r.Body = string(head.buf)
	}
	if n > blockSize {
		r.BodyBlocks = blocks.sums()
	}
	if err != nil {
		r.BodyErr = errClass(err)
	}
	return r
}

// prefixWriter keeps the first max bytes written to it.
type prefixWriter struct {
	max int
	buf []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// blockSize is the piece of a body that BodyBlocks hashes.
const blockSize = 1 << 20

// blockHasher hashes what is written to it in blockSize pieces.
type blockHasher struct {
	h    hash.Hash
	n    int
	done []string
}

func (b *blockHasher) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := min(blockSize-b.n, len(p))
		b.h.Write(p[:k])
		b.n += k
		p = p[k:]
		if b.n == blockSize {
			b.flush()
		}
	}
	return total, nil
}

func (b *blockHasher) flush() {
	b.done = append(b.done, fmt.Sprintf("MiB %d: %x", len(b.done), b.h.Sum(nil)[:6]))
	b.h.Reset()
	b.n = 0
}

// sums returns the hashes of every block, the last one partial.
func (b *blockHasher) sums() []string {
	if b.n > 0 {
		b.flush()
	}
	return b.done
}

// slowReader reads at most chunk bytes per Read, sleeping delay before each.
type slowReader struct {
	r     io.Reader
	chunk int
	delay time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	time.Sleep(s.delay)
	return s.r.Read(p)
}

// addrPattern matches the host:port pairs that make error texts differ
// from run to run.
var addrPattern = regexp.MustCompile(`(\[[0-9a-f:]+\]|[0-9]+(\.[0-9]+){3}):[0-9]+`)

// errClass reduces a client-side error to what should match between
// servers: the kind of failure, not its addresses.
func errClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected eof"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	for _, c := range errnoClasses {
		if errors.Is(err, c.errno) {
			return c.class
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timeout"
	}
	return addrPattern.ReplaceAllString(err.Error(), "ADDR")
}
