package builtin_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// answerBound is how long a normal client may wait for its answer while
// attackers hold every connection slot in the tests below: generous for
// a noisy machine, and far below what the attacks held clients out for
// before the host reclaimed connections (the guest's 120 s idle timeout,
// its 60 s read timeout).
const answerBound = 15 * time.Second

// raiseNoFile makes room for n more descriptors in this process (the
// engines run in it, so each guest connection is a descriptor here as
// well as the client's end), or skips the test with the reason.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	want := uint64(enginetest.OpenFDs(t)) + n
	if uint64(lim.Cur) >= want {
		return
	}
	if uint64(lim.Max) < want {
		t.Skipf("RLIMIT_NOFILE hard limit %d is below the %d descriptors the test needs", lim.Max, want)
	}
	old := lim
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", lim.Max, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// getHealthz sends GET /healthz on c and reads the answer, leaving the
// connection open (keep-alive).
func getHealthz(c net.Conn, r *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// timeAnswer dials addr, posts a short echo and returns how long the answer
// took from the dial, failing the test unless it comes within answerBound.
func timeAnswer(t *testing.T, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, answerBound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(start.Add(answerBound))
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nnormal")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a normal client was not answered within %s: %v", answerBound, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "normal" {
		t.Fatalf("a normal client was answered %q, %v", body, err)
	}
	return time.Since(start)
}

// TestIdleKeepAliveReclaimed is attack 1 of the third attack round: 4,096
// keep-alive connections, each sending one GET /healthz and then idling,
// fill the default connection limit; a new client must still be
// answered, because the host closes the longest idle connections for it,
// and none of the connections may be cut mid-request.
func TestIdleKeepAliveReclaimed(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 4,096 connections per engine (several seconds): skipped with -short")
	}
	const idle = 4096
	raiseNoFile(t, 2*idle+256)
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	maxConns := wasiserve.DefaultMaxConns(0, 1, uint64(lim.Cur))
	if maxConns > idle {
		t.Fatalf("the default connection limit is %d, above the %d idle connections", maxConns, idle)
	}
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: maxConns})
			// The attack: dial and send one request per connection, 64 at
			// a time; the guest answers up to its limit, the rest wait.
			conns := make([]net.Conn, idle)
			answered := make([]bool, idle)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 64)
			for i := range conns {
				c, err := net.Dial("tcp", inst.Addr)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				defer c.Close()
				conns[i] = c
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					c.SetDeadline(time.Now().Add(answerBound))
					answered[i] = getHealthz(c, bufio.NewReader(c)) == nil
					c.SetDeadline(time.Time{})
				}()
			}
			wg.Wait()
			n := 0
			for _, ok := range answered {
				if ok {
					n++
				}
			}
			if n < maxConns {
				t.Fatalf("%d of %d connections were answered, want at least the limit %d", n, idle, maxConns)
			}
			st, _ := inst.Stats()
			t.Logf("%d idle keep-alive connections answered (limit %d), %d open in the guest, %d reclaimed", n, maxConns, st.OpenConns, st.ReclaimedIdle)
			waited := timeAnswer(t, inst.Addr)
			st, _ = inst.Stats()
			t.Logf("%s: a new client behind %d idle keep-alive connections was answered after %s; %d reclaimed as idle, %d as slow",
				name, n, waited.Round(time.Millisecond), st.ReclaimedIdle, st.ReclaimedSlow)
			if st.ReclaimedIdle == 0 {
				t.Errorf("answered with no connection reclaimed (stats %+v)", st)
			}
			if st.ReclaimedSlow != 0 {
				t.Errorf("%d idle connections counted as slow senders", st.ReclaimedSlow)
			}
		})
	}
}

// TestSlowBodiesReclaimed is the slow-body shape of the third attack
// round: clients that send their bodies at 1 byte/s fill --max-conns 100;
// once they have been at it for a while (their progress deadline passed),
// a normal client must be answered at once, not after the guest's read
// timeout.
func TestSlowBodiesReclaimed(t *testing.T) {
	const maxConns = 100
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: maxConns})
			done := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(done)
			for range maxConns {
				c, err := net.Dial("tcp", inst.Addr)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
				wg.Add(1)
				go func() { // 1,000 bytes at 1 byte/s
					defer wg.Done()
					defer c.Close()
					tick := time.NewTicker(time.Second)
					defer tick.Stop()
					for {
						select {
						case <-done:
							return
						case <-tick.C:
						}
						if _, err := c.Write([]byte("x")); err != nil {
							return // cut
						}
					}
				}()
			}
			if !waitFor(answerBound, func() bool { st, _ := inst.Stats(); return st.OpenConns == maxConns }) {
				st, _ := inst.Stats()
				t.Fatalf("the guest has %d connections open, want the %d slow ones", st.OpenConns, maxConns)
			}
			// The attack's steady state: the slow clients have been
			// sending for longer than the progress grace.
			time.Sleep(engine.DefaultReclaim.SlowGrace + time.Second)
			waited := timeAnswer(t, inst.Addr)
			st, _ := inst.Stats()
			t.Logf("%s: a normal client behind %d slow bodies (1 byte/s) was answered after %s; %d reclaimed as slow, %d as idle",
				name, maxConns, waited.Round(time.Millisecond), st.ReclaimedSlow, st.ReclaimedIdle)
			if st.ReclaimedSlow == 0 {
				t.Errorf("answered with no slow sender reclaimed (stats %+v)", st)
			}
		})
	}
}

// holdInFlight starts on c a POST whose echo the client never reads, with
// a body it sends as fast as the guest takes it: the guest ends up
// waiting to write its response, a connection with a response in flight.
// release reads the echo to its end (after the body stops) and reports
// whether it came back whole, up to the first byte that was not 'a'.
func holdInFlight(t *testing.T, c net.Conn) (release func() error) {
	t.Helper()
	// Far more than the socket buffers hold, with the client's own
	// receive buffer small, so that the guest cannot finish writing.
	const body = 32 << 20
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(64 << 10)
	}
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", body)
	sent := make(chan error, 1)
	go func() {
		chunk := []byte(strings.Repeat("a", 64<<10))
		var err error
		for n := 0; n < body && err == nil; n += len(chunk) {
			_, err = c.Write(chunk)
		}
		sent <- err
	}()
	return func() error {
		c.SetDeadline(time.Now().Add(answerBound))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return fmt.Errorf("echo cut after %d bytes: %w", n, err)
		}
		if err := <-sent; err != nil {
			return fmt.Errorf("sending the body: %w", err)
		}
		if n != body {
			return fmt.Errorf("echo of %d bytes, want %d", n, body)
		}
		return nil
	}
}

// TestInFlightNeverReclaimed fills a limit of 2 with requests whose
// responses are in flight (the guest waits to write them) while a third
// client waits for a good while: neither may be reclaimed, the third is
// answered once they end, and both echoes are whole.
func TestInFlightNeverReclaimed(t *testing.T) {
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: 2})
			var releases []func() error
			for range 2 {
				c, err := net.Dial("tcp", inst.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				releases = append(releases, holdInFlight(t, c))
			}
			if !waitFor(answerBound, func() bool { st, _ := inst.Stats(); return st.OpenConns == 2 }) {
				t.Fatal("the two in-flight requests are not both open")
			}
			third, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer third.Close()
			fmt.Fprintf(third, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthird")
			// Past every grace of the host's reclaim.
			wait := engine.DefaultReclaim.IdleGrace + engine.DefaultReclaim.SlowGrace + time.Second
			third.SetReadDeadline(time.Now().Add(wait))
			if n, err := third.Read(make([]byte, 1)); n > 0 || !isTimeout(err) {
				t.Fatalf("a third connection was served while two responses were in flight (read %d bytes, %v)", n, err)
			}
			if st, _ := inst.Stats(); st.ReclaimedIdle+st.ReclaimedSlow != 0 {
				t.Fatalf("in-flight connections reclaimed: %+v", st)
			}
			for i, release := range releases {
				if err := release(); err != nil {
					t.Errorf("in-flight request %d: %v", i, err)
				}
			}
			third.SetReadDeadline(time.Now().Add(answerBound))
			resp, err := http.ReadResponse(bufio.NewReader(third), nil)
			if err != nil {
				t.Fatalf("third connection after the others ended: %v", err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != "third" {
				t.Fatalf("third connection answered %q", got)
			}
		})
	}
}

// TestHeldBackAnswersReclaimed: clients that fill the limit with
// requests whose answers they never take (the guest waits to write, and
// no byte goes out) do not hold the slots for good: once the guest has
// been unable to write for the host's stall grace (10 s), a waiting
// client is answered. Before, a limit of 2 (or 4, with fd3's plain
// http.Serve) stayed locked as long as the holders stayed connected.
func TestHeldBackAnswersReclaimed(t *testing.T) {
	const stallGrace = 10 * time.Second // hostsock's stalledWriteGrace
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: 2})
			for range 2 {
				c, err := net.Dial("tcp", inst.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				holdInFlight(t, c) // never released: the answer is never read
			}
			if !waitFor(answerBound, func() bool { st, _ := inst.Stats(); return st.OpenConns == 2 }) {
				t.Fatal("the two held-back requests are not both open")
			}
			c, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			c.SetDeadline(start.Add(stallGrace + answerBound))
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nnormal")
			got, err := readEchoBy(c, start.Add(stallGrace+answerBound))
			if err != nil || got != "normal" {
				st, _ := inst.Stats()
				t.Fatalf("a client behind two held-back answers: %q, %v after %s (stats %+v)", got, err, time.Since(start).Round(time.Millisecond), st)
			}
			st, _ := inst.Stats()
			t.Logf("%s: a client behind two held-back answers was answered after %s; %d reclaimed as slow",
				name, time.Since(start).Round(time.Millisecond), st.ReclaimedSlow)
			if st.ReclaimedSlow == 0 {
				t.Errorf("answered with no connection reclaimed (stats %+v)", st)
			}
		})
	}
}

// trickle sends body on c as every chunk bytes per gap, from a goroutine,
// after headers for a POST of its length; the returned channel gets the
// result of the writes.
func trickle(c net.Conn, body string, chunk int, gap time.Duration) <-chan error {
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < len(body); i += chunk {
			time.Sleep(gap)
			if _, err := io.WriteString(c, body[i:min(i+chunk, len(body))]); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	return sent
}

// readEcho reads the echo guest's answer on c.
func readEcho(c net.Conn) (string, error) {
	return readEchoBy(c, time.Now().Add(answerBound))
}

// readEchoBy reads the echo guest's answer on c by deadline.
func readEchoBy(c net.Conn, deadline time.Time) (string, error) {
	c.SetReadDeadline(deadline)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return string(got), err
}

// TestSlowSenderKeptWithoutPressure: a client sending at 2 bytes/s, far
// below the minimum rate and for longer than the (shortened) grace, holds
// the only place of a limit of 1; with nobody waiting the host never cuts
// it, and its echo comes back whole.
func TestSlowSenderKeptWithoutPressure(t *testing.T) {
	reclaim := engine.Reclaim{IdleGrace: 200 * time.Millisecond, SlowGrace: 300 * time.Millisecond}
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: 1, Reclaim: reclaim})
			c, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const body = "slowlink"
			sent := trickle(c, body, 1, 500*time.Millisecond) // 4 s
			if err := <-sent; err != nil {
				t.Fatalf("sending the body: %v", err)
			}
			if got, err := readEcho(c); err != nil || got != body {
				t.Fatalf("echo %q, %v; want %q", got, err, body)
			}
			if st, _ := inst.Stats(); st.ReclaimedIdle+st.ReclaimedSlow != 0 {
				t.Errorf("reclaimed with nobody waiting: %+v", st)
			}
		})
	}
}

// TestReclaimPicksSlowSender fills a limit of 2 with a client that sends
// its body at 1 byte/s and one that uploads steadily at 2 KB/s; a third
// client that waits gets the slow one's place, and the steady upload is
// untouched.
func TestReclaimPicksSlowSender(t *testing.T) {
	reclaim := engine.Reclaim{SlowGrace: 500 * time.Millisecond}
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: 2, Reclaim: reclaim})
			slow, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			slowSent := trickle(slow, strings.Repeat("s", 100), 1, time.Second)
			steady, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer steady.Close()
			upload := strings.Repeat("u", 8000) // 200 bytes every 100 ms: 4 s
			steadySent := trickle(steady, upload, 200, 100*time.Millisecond)
			if !waitFor(answerBound, func() bool { st, _ := inst.Stats(); return st.OpenConns == 2 }) {
				t.Fatal("the two uploads are not both open")
			}
			time.Sleep(reclaim.SlowGrace + 500*time.Millisecond) // the slow one is behind
			waited := timeAnswer(t, inst.Addr)
			t.Logf("%s: the waiting client was answered after %s", name, waited.Round(time.Millisecond))
			if err := <-steadySent; err != nil {
				t.Fatalf("the steady upload was cut while sending: %v", err)
			}
			if got, err := readEcho(steady); err != nil || got != upload {
				t.Fatalf("steady upload's echo: %d bytes, %v; want its %d", len(got), err, len(upload))
			}
			st, _ := inst.Stats()
			if st.ReclaimedSlow != 1 || st.ReclaimedIdle != 0 {
				t.Errorf("reclaimed %d slow and %d idle, want the 1 slow sender", st.ReclaimedSlow, st.ReclaimedIdle)
			}
			slow.SetReadDeadline(time.Now().Add(answerBound))
			if n, err := slow.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
				t.Errorf("the slow sender's connection: read %d bytes, %v; want it closed", n, err)
			}
			slow.Close()
			<-slowSent
		})
	}
}

// TestBlockingGuestReclaimed serves a guest that keeps its connections
// blocking and answers one keep-alive connection at a time (as a guest
// without a netpoller does), at a limit of 1: while its first client
// idles, a second one waits; the host reclaims the idle one from the
// guest's blocking read, and the second is answered.
func TestBlockingGuestReclaimed(t *testing.T) {
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.FD3.Path(t), engine.Config{MaxConns: 1, Env: []string{"BLOCKING_KEEPALIVE=2"}})
			first, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			r := bufio.NewReader(first)
			first.SetDeadline(time.Now().Add(answerBound))
			if err := getBlocked(first, r); err != nil {
				t.Fatalf("first client: %v", err)
			}
			second, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			start := time.Now()
			second.SetDeadline(start.Add(answerBound))
			if err := getBlocked(second, bufio.NewReader(second)); err != nil {
				t.Fatalf("second client, behind an idle one: %v after %s", err, time.Since(start).Round(time.Millisecond))
			}
			t.Logf("%s: the second client was answered after %s", name, time.Since(start).Round(time.Millisecond))
			if n, err := r.ReadByte(); err != io.EOF {
				t.Errorf("the idle first client: read %v, %v; want end of file", n, err)
			}
			if st, _ := inst.Stats(); st.ReclaimedIdle != 1 || st.ReclaimedSlow != 0 {
				t.Errorf("reclaimed %d idle, %d slow; want 1 idle", st.ReclaimedIdle, st.ReclaimedSlow)
			}
		})
	}
}

// getBlocked sends GET / on c and reads the fd3 guest's keep-alive answer.
func getBlocked(c net.Conn, r *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && string(body) != "blocked" {
		err = fmt.Errorf("answered %q", body)
	}
	return err
}
