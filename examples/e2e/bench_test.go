//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchConns is the closed-loop load's concurrency: keep-alive
// connections to the guest, one request at a time each.
const benchConns = 16

// Windows of the syscall count, in requests one after the other: the
// count per request is (count(n2) - count(n1)) / (n2 - n1), so that
// strace's attach and detach cancel out.
const (
	straceN1 = 200
	straceN2 = 1000
)

// BenchmarkCallout measures the callout guest's routes natively
// (GOMAXPROCS=1, as a guest has one thread) and on each engine, in one
// run: requests/s of a closed loop of 16 keep-alive clients, the served
// process's CPU time per request (hostharness or the native guest; not
// the upstream's), and, where strace is installed, the served process's
// syscalls per request. Routes: healthz (no upstream, the baseline),
// http (one GET to a keep-alive HTTP upstream), pg (one query on pgx's
// pool), connect (one TCP connect and close: connect minus healthz is the
// cost of an outbound connection).
//
//	go test ./examples/e2e -run '^$' -bench Callout -benchtime 3000x
func BenchmarkCallout(b *testing.B) {
	up := startHTTP(b, nil)
	echo, _ := startEcho(b, "tcp4")
	pg := startPostgres(b)
	routes := []struct{ name, path string }{
		{"healthz", "/healthz"},
		{"http", "/fetch?url=" + url.QueryEscape("http://"+up.addr+"/hello")},
		{"pg", "/pg?a=1&b=2"},
		{"connect", "/connect?addr=" + url.QueryEscape(echo.addr)},
	}
	env := []string{"DATABASE_URL=" + pg.url()}
	allow := []string{"--allow-dial", up.addr, "--allow-dial", echo.addr, "--allow-dial", "127.0.0.1:" + strconv.Itoa(pg.port)}
	targets := append([]string{"native"}, engines...)
	for _, target := range targets {
		b.Run(target, func(b *testing.B) {
			var s *server
			if target == "native" {
				s = serveNative(b, bins.calloutNative, append(env, "GOMAXPROCS=1")...)
			} else {
				s = serve(b, target, append(append(allow, "--env", env[0]), bins.calloutWasm)...)
			}
			for _, r := range routes {
				b.Run(r.name, func(b *testing.B) { benchRoute(b, s, r.path) })
			}
		})
	}
}

// benchRoute sends b.N requests for path to s from benchConns clients
// and reports requests/s and s's CPU time per request; with strace, also
// its syscalls per request.
func benchRoute(b *testing.B, s *server, path string) {
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: benchConns}}
	defer c.CloseIdleConnections()
	get := func() error {
		resp, err := c.Get(s.base + path)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
	for range 100 { // warm up: the guest's heap, the pools
		if err := get(); err != nil {
			b.Fatalf("%v; stderr:\n%s", err, s.logs)
		}
	}
	pid := s.cmd.Process.Pid
	cpu0 := processCPU(b, pid)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchConns)
	began := time.Now()
	for range benchConns {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := get(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	b.StopTimer()
	cpu := processCPU(b, pid) - cpu0
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/took.Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
	if b.N >= straceN2 {
		if n, ok := syscallsPerRequest(b, pid, get); ok {
			b.ReportMetric(n, "syscalls/req")
		}
	}
}

// processCPU is the user and system CPU time pid has used.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command, which is in parentheses: utime is the
	// 14th field of the line, stime the 15th.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

// syscallsPerRequest counts the syscalls of every thread of pid with
// strace -c -f over two windows of requests sent one after the other;
// ok is false without strace.
func syscallsPerRequest(b *testing.B, pid int, get func() error) (float64, bool) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		b.Log("strace is not installed: no syscall count")
		return 0, false
	}
	window := func(n int) float64 {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			b.Fatal(err)
		}
		var tids []string
		for _, t := range tasks {
			tids = append(tids, t.Name())
		}
		out := filepath.Join(b.TempDir(), "strace")
		cmd := exec.Command(strace, "-c", "-f", "-o", out, "-p", strings.Join(tids, ","))
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second) // attach
		for range n {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		return straceTotal(b, out)
	}
	c1, c2 := window(straceN1), window(straceN2)
	return (c2 - c1) / (straceN2 - straceN1), true
}

// straceTotal reads the total number of calls from strace -c's summary.
func straceTotal(b *testing.B, path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 && fields[len(fields)-1] == "total" {
			n, _ := strconv.ParseFloat(fields[3], 64) // % time, seconds, usecs/call, calls
			return n
		}
	}
	b.Fatalf("no total in %s", path)
	return 0
}
