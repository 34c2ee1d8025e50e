package compare

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultCorpusCoversTheIssue(t *testing.T) {
	corpus, err := DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	var h2c, raw, chunked, expect, long int
	for _, c := range corpus.Cases {
		methods[c.Method] = true
		switch {
		case c.H2C:
			h2c++
		case c.Kind == KindRaw:
			raw++
		}
		if c.Chunked {
			chunked++
		}
		if c.ExpectContinue {
			expect++
		}
		if c.Long {
			long++
		}
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if !methods[m] {
			t.Errorf("no http case with method %s", m)
		}
	}
	if h2c < 3 || raw < 10 || chunked == 0 || expect == 0 || long != 1 {
		t.Errorf("corpus has %d h2c, %d raw, %d chunked, %d expect-continue, %d long cases", h2c, raw, chunked, expect, long)
	}
}

func TestLoadCorpusErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"empty", `{"cases": []}`, "no cases"},
		{"unknown field", `{"cases": [{"name": "a", "kind": "http", "method": "GET", "path": "/", "bogus": 1}]}`, "unknown field"},
		{"unknown kind", `{"cases": [{"name": "a", "kind": "udp"}]}`, `kind "udp"`},
		{"http without path", `{"cases": [{"name": "a", "kind": "http", "method": "GET"}]}`, "method and path"},
		{"raw without head", `{"cases": [{"name": "a", "kind": "raw"}]}`, "needs a head"},
		{"bad template", `{"cases": [{"name": "a", "kind": "raw", "head": "{{nope}}"}]}`, "head"},
		{"bad hex", `{"cases": [{"name": "a", "kind": "raw", "head": "{{hex \"zz\"}}"}]}`, "head"},
		{"two bodies", `{"cases": [{"name": "a", "kind": "http", "method": "POST", "path": "/", "body": {"text": "x", "random": 3}}]}`, "exactly one"},
		{"abort past the body", `{"cases": [{"name": "a", "kind": "raw", "head": "x", "abort_after": 9, "body": {"text": "abc"}}]}`, "abort_after"},
		{"duplicate", `{"cases": [{"name": "a", "kind": "raw", "head": "x"}, {"name": "a", "kind": "raw", "head": "y"}]}`, "duplicate"},
		{"bad duration", `{"cases": [{"name": "a", "kind": "raw", "head": "x", "timeout": "soon"}]}`, "duration"},
		{"known without reason", `{"cases": [{"name": "a", "kind": "raw", "head": "x"}], "known_differences": [{"target": "t", "cases": "a"}]}`, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCorpus([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadCorpus: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestHeadTemplate(t *testing.T) {
	corpus, err := LoadCorpus([]byte(`{"cases": [{"name": "a", "kind": "raw",
		"head": "L {{.BodyLen}} {{range seq 3}}h{{.}} {{end}}{{repeat \"ab\" 2}}{{hex \"00ff\"}}", "body": {"random": 5, "seed": 1}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(corpus.Cases[0].head), "L 5 h1 h2 h3 abab\x00\xff"; got != want {
		t.Fatalf("head %q, want %q", got, want)
	}
}

func TestBodyIsDeterministic(t *testing.T) {
	b := &Body{Random: 100000, Seed: 42}
	one, _ := io.ReadAll(b.Reader())
	two, _ := io.ReadAll(b.Reader())
	other, _ := io.ReadAll((&Body{Random: 100000, Seed: 43}).Reader())
	if len(one) != 100000 || string(one) != string(two) || string(one) == string(other) {
		t.Fatalf("len %d, same seed equal %v, other seed equal %v", len(one), string(one) == string(two), string(one) == string(other))
	}
}

func TestNormalise(t *testing.T) {
	listener := func(fd int, source, addr, goos string, remoteLocal ...string) Response {
		remoteLocal = append(remoteLocal, "127.0.0.1:1", "127.0.0.1:2")
		body := fmt.Sprintf(`{"listener": {"source": %q, "fd": %d, "addr": %q}, "go_version": "go1.26.8", "goos": %q, "goarch": "x", "remote_addr": %q, "local_addr": %q}`,
			source, fd, addr, goos, remoteLocal[0], remoteLocal[1])
		return Response{Status: 200, Body: body, BodyLen: int64(len(body)), Header: http.Header{
			"Content-Type": {"application/json"}, "Content-Length": {fmt.Sprint(len(body))}, "Date": {"now"}}}
	}
	for _, tc := range []struct {
		name      string
		a, b      Response
		wantEqual bool
	}{
		{"dates differ", Response{Header: http.Header{"Date": {"a"}}}, Response{Header: http.Header{"Date": {"b"}}}, true},
		{"other header differs", Response{Header: http.Header{"X": {"a"}}}, Response{Header: http.Header{"X": {"b"}}}, false},
		{"listener reports", listener(-1, "address", "127.0.0.1:1", "linux"), listener(3, "scan", "", "wasip1"), true},
		{"listener go versions differ", listener(-1, "address", "", "linux"),
			func() Response {
				r := listener(3, "scan", "", "wasip1")
				r.Body = strings.Replace(r.Body, "go1.26.8", "go1.25", 1)
				return r
			}(), false},
		{"ports of the addresses differ", listener(-1, "address", "", "linux", "127.0.0.1:5", "127.0.0.1:6"),
			listener(3, "scan", "", "wasip1", "127.0.0.1:7", "127.0.0.1:8"), true},
		{"IPv6 ports differ", listener(-1, "address", "", "linux", "[::1]:5", "[::1]:6"),
			listener(3, "scan", "", "wasip1", "[::1]:7", "[::1]:8"), true},
		{"client addresses differ", listener(-1, "address", "", "linux", "127.0.0.1:5", "127.0.0.1:6"),
			listener(3, "scan", "", "wasip1", ":0", "127.0.0.1:8"), false},
		{"plain bodies differ", Response{Body: "a", BodyLen: 1}, Response{Body: "b", BodyLen: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Observation{Responses: []Response{tc.a}}, Observation{Responses: []Response{tc.b}}
			normalise(&a)
			normalise(&b)
			if diff := cmp.Diff(a, b, cmpOptions); (diff == "") != tc.wantEqual {
				t.Fatalf("equal after normalising: %v, want %v\n%s", diff == "", tc.wantEqual, diff)
			}
		})
	}
}

func TestErrClass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.EOF, "eof"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "connection reset"},
		{&os.SyscallError{Syscall: "write", Err: syscall.EPIPE}, "broken pipe"},
		{os.ErrDeadlineExceeded, "timeout"},
		{fmt.Errorf("read tcp 127.0.0.1:5555->127.0.0.1:6666: boom"), "read tcp ADDR->ADDR: boom"},
	} {
		if got := errClass(tc.err); got != tc.want {
			t.Errorf("errClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestReportTable(t *testing.T) {
	rep := newReport(Target{Name: "ref"}, []Target{{Name: "a"}, {Name: "b"}})
	rep.add(Result{Case: "c1", Target: "a", Status: Pass})
	rep.add(Result{Case: "c1", Target: "b", Status: Fail, Reason: "differs from ref", Diff: "-x\n+y\n"})
	rep.add(Result{Case: "c2", Target: "a", Status: Skip, Reason: "not available: no such runtime"})
	rep.add(Result{Case: "c2", Target: "b", Status: Skip, Reason: "known: understood", Diff: "-p\n+q\n"})
	var out strings.Builder
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for _, want := range []string{
		"c1                     PASS                 FAIL",
		"c2                     SKIP(not available)  SKIP(known)",
		"FAIL c1 on b: differs from ref",
		"SKIP c2 on b: known: understood",
		"1 passed, 1 failed, 2 skipped",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("table lacks the line %q:\n%s", want, out.String())
		}
	}
	if rep.OK() {
		t.Error("OK with a failure")
	}
}
