package wasiserve_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// headerAttack opens conns connections to addr, each sending a request
// whose one header holds 1,000,000 bytes, under net/http's 1 MiB limit,
// and never ends it; it returns once every connection has sent it all or
// given up (the guest closed it, or 20 s passed), and the function that
// closes them.
func headerAttack(t *testing.T, addr string, conns int) (sent int, closeAll func()) {
	t.Helper()
	header := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1_000_000)
	var (
		mu   sync.Mutex
		open []net.Conn
		wg   sync.WaitGroup
	)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Logf("dial: %v", err)
			continue
		}
		open = append(open, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(c, header); err == nil {
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return sent, func() {
		for _, c := range open {
			c.Close()
		}
	}
}

// answers waits (up to a minute) for the guest at url to answer
// GET /healthz.
func answers(url string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, err := get(url + "/healthz")
		if err == nil {
			if code == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%d %q", code, body)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLargeHeadersWithinBudget sends 64 requests of 1 MB headers, never
// ended, to an echo guest of a 64 MiB budget (which each costs about
// 2 MiB of its memory), with the default connection limit: the guest
// holds the 16 it may (half its budget), the rest wait in the backlog, it
// stays up, and answers once they are gone. Before, the default limit
// was 204 connections for 64 MiB: the guest ran out of memory and the
// server exited.
func TestLargeHeadersWithinBudget(t *testing.T) {
	for _, name := range enginetest.Engines().With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			r := startServer(t, name, enginetest.Echo.Path(t), wasiserve.Options{MaxMemory: 64 << 20})
			url, ended := r.url, r.ended
			sent, closeAll := headerAttack(t, strings.TrimPrefix(url, "http://"), 64)
			t.Logf("%d of 64 connections sent their 1 MB header", sent)
			// The guest reads what it accepted; give it time to run out of
			// memory if it would.
			time.Sleep(2 * time.Second)
			if ok, err := ended(); ok {
				t.Fatalf("the server ended under the attack: %v", err)
			}
			closeAll()
			if err := answers(url); err != nil {
				t.Fatalf("after the attack: %v", err)
			}
			if ok, err := ended(); ok {
				t.Fatalf("the server ended: %v", err)
			}
		})
	}
}

// TestOutOfMemoryRestarts runs the same attack against a guest whose
// connection limit (200) lets it run out of its 64 MiB budget: with
// Restart, the guest exits ("out of memory"), is restarted, and answers
// once the attackers are gone; the server never ends.
func TestOutOfMemoryRestarts(t *testing.T) {
	for _, name := range enginetest.Engines().With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			var stderr syncbuf.Buffer
			r := startServer(t, name, enginetest.Echo.Path(t), wasiserve.Options{MaxMemory: 64 << 20, MaxConns: 200, Restart: true, Stderr: &stderr})
			url, srv, ended := r.url, r.srv, r.ended
			_, closeAll := headerAttack(t, strings.TrimPrefix(url, "http://"), 64)
			deadline := time.Now().Add(time.Minute)
			for srv.Stats().Instances[0].Exits == 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			closeAll()
			st := srv.Stats().Instances[0]
			tail := stderr.String()
			if i := strings.Index(tail, "fatal error"); i >= 0 {
				tail = tail[i:min(len(tail), i+100)]
			}
			t.Logf("exits %d, restarts %d; guest stderr: %.100q", st.Exits, st.Restarts, tail)
			if st.Exits == 0 {
				t.Fatal("the guest did not run out of memory under 64 MB of headers: the attack proves nothing")
			}
			if err := answers(url); err != nil {
				t.Fatalf("after the attack, restarted: %v", err)
			}
			if ok, err := ended(); ok {
				t.Fatalf("the server ended: %v", err)
			}
		})
	}
}

// h2Attack runs conns HTTP/2 (prior knowledge) connections to url, each
// with streams POSTs of 60 KB bodies at a time, for rounds rounds, and
// returns how many were answered 200, how many failed and the first
// failure, once it has closed its connections.
func h2Attack(url string, conns, streams, rounds int) (ok, failed int, first error) {
	body := strings.Repeat("b", 60_000)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conns {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		transport := &http.Transport{Protocols: &protocols}
		defer transport.CloseIdleConnections()
		client := &http.Client{Timeout: 20 * time.Second, Transport: transport}
		for range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					resp, err := client.Post(url+"/", "text/plain", strings.NewReader(body))
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("status %d", resp.StatusCode)
						}
					}
					mu.Lock()
					if err == nil {
						ok++
					} else {
						failed++
						if first == nil {
							first = err
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return ok, failed, first
}

// TestH2LoadWithinBudget sends HTTP/2 load (16 connections of 100
// streams, 60 KB bodies: 96 MB in flight) to an echo guest of a 64 MiB
// budget with Restart and the default connection limit: requests may be
// refused and the guest may run out of memory, but then it is restarted,
// it answers afterwards, and the server never ends.
func TestH2LoadWithinBudget(t *testing.T) {
	for _, name := range enginetest.Engines().With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			r := startServer(t, name, enginetest.Echo.Path(t), wasiserve.Options{MaxMemory: 64 << 20, Restart: true})
			url, srv, ended := r.url, r.srv, r.ended
			ok, failed, first := h2Attack(url, 16, 100, 1)
			st := srv.Stats().Instances[0]
			t.Logf("%d answered, %d failed (first: %v); guest exits %d, restarts %d", ok, failed, first, st.Exits, st.Restarts)
			if err := answers(url); err != nil {
				t.Fatalf("after the attack: %v", err)
			}
			if done, err := ended(); done {
				t.Fatalf("the server ended: %v", err)
			}
		})
	}
}
