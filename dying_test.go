//go:build unix

package wasiserve_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// countingWriter counts the bytes written to it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// TestDyingGuest serves, on each engine that owns the listener, a guest
// that dies as Go servers die under load, with Restart and a 64 MiB
// memory cap: the host stays up, the guest's output stays within its
// rate (with the dropped bytes logged), and the guest is restarted after
// each death and answers again: after a 64 MiB flood of stderr, a runtime
// stuck printing its goroutines (which never exits by itself) and a real
// out of memory.
func TestDyingGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves a guest on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			stderr := &countingWriter{}
			began := time.Now()
			r := startServer(t, name, enginetest.Dying.Path(t), wasiserve.Options{Restart: true, MaxMemory: 64 << 20,
				Stderr: stderr, Stdout: stderr})
			client := &http.Client{Timeout: 60 * time.Second}
			r.get(t)

			// bound is the most output the instances started so far may
			// have written: a burst each and the rate since the start.
			bound := func(instances int) int64 {
				return int64(instances)*engine.DefaultOutputRate*engine.OutputBurstSeconds +
					int64(time.Since(began).Seconds()+1)*engine.DefaultOutputRate
			}
			resp, err := client.Get(r.url + fmt.Sprintf("/flood?bytes=%d", 64<<20))
			if err != nil {
				t.Fatalf("flood: %v", err)
			}
			resp.Body.Close()
			if n, max := stderr.n.Load(), bound(1); n > max {
				t.Fatalf("the guest wrote %d bytes of its 64 MiB flood, more than the %d its rate allows", n, max)
			}
			if st := r.srv.Stats(); len(st.Instances) == 0 || st.Instances[0].OutputDropped < 40<<20 {
				t.Errorf("stats %+v: want at least 40 MiB of output dropped", st)
			}
			waitLog(t, r.log, "bytes of guest stderr")
			t.Log(grepLine(r.log.String(), "bytes of guest stderr"))

			for i, path := range []string{"/stuck", "/oom"} {
				go func() {
					if resp, err := client.Get(r.url + path); err == nil {
						resp.Body.Close()
					}
				}()
				waitRestarts(t, r, uint64(i+1))
				r.get(t)
				if n, max := stderr.n.Load(), bound(i+2); n > max {
					t.Fatalf("after %s the guest had written %d bytes, more than the %d its rate allows", path, n, max)
				}
			}
			t.Log(grepLine(r.log.String(), "stopping a dying guest"))
			for line := range strings.Lines(r.log.String()) {
				if strings.Contains(line, "guest exited") {
					t.Log(strings.TrimSpace(line))
				}
			}
			r.stop(t)
		})
	}
}

// TestHealthyGuestLogsBanner: a healthy guest that logs a client's
// words as they came ("\nfatal error: out of memory") and then writes
// only a heartbeat to stderr, with no request coming, is not taken for a
// dying runtime: its runtime still waits (poll_oneoff) between the lines,
// which a failed Go runtime never does. Before, one such request had the
// host stop the guest 3 s later, and without Restart serve exited 2.
func TestHealthyGuestLogsBanner(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves a guest on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			stderr := &syncbuf.Buffer{}
			r := startServer(t, name, enginetest.Dying.Path(t), wasiserve.Options{
				Env: []string{"DYINGGUEST_HEARTBEAT=200ms"}, Stderr: stderr})
			r.get(t)
			resp, err := http.Post(r.url+"/note", "text/plain", strings.NewReader("x\nfatal error: out of memory\n"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// Wait for heartbeats spanning twice the liveness stop's stall
			// (at 200 ms a line), with no request meanwhile.
			beats := func() int { return strings.Count(stderr.String(), "heartbeat") }
			after := beats()
			want := after + int(2*engine.FatalStallTicks*engine.LivenessInterval/(200*time.Millisecond))
			deadline := time.Now().Add(2 * time.Minute)
			for beats() < want && !strings.Contains(r.log.String(), "stopping a dying guest") {
				if time.Now().After(deadline) {
					t.Fatalf("%d heartbeats in 2m, want %d; log:\n%s", beats()-after, want-after, r.log.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if strings.Contains(r.log.String(), "stopping a dying guest") {
				t.Fatalf("a healthy guest was stopped as dying; log:\n%s", r.log.String())
			}
			r.get(t)
			r.stop(t)
		})
	}
}

// waitRestarts waits (bounded) until the guest was restarted n times.
func waitRestarts(t *testing.T, r *running, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := r.srv.Stats()
		if len(st.Instances) > 0 && st.Instances[0].Restarts >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest was not restarted %d times in 5m; stats %+v; log:\n%s", n, st, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGuestOutputRate: Options.GuestOutputRate sets each instance's
// output rate, and NoOutputLimit lifts it.
func TestGuestOutputRate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves a guest")
	}
	const flood = 4 << 20
	for _, tc := range []struct {
		name string
		rate int64
		max  func(elapsed time.Duration) int64
	}{
		{"64KiB/s", 64 << 10, func(elapsed time.Duration) int64 {
			return (64 << 10) * (engine.OutputBurstSeconds + int64(elapsed.Seconds()+1))
		}},
		{"no limit", wasiserve.NoOutputLimit, func(time.Duration) int64 { return flood }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr := &countingWriter{}
			began := time.Now()
			r := startServer(t, wazy.Name, enginetest.Dying.Path(t), wasiserve.Options{GuestOutputRate: tc.rate, Stderr: stderr})
			resp, err := http.Get(r.url + fmt.Sprintf("/flood?bytes=%d", flood))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			n, max := stderr.n.Load(), tc.max(time.Since(began))
			if n > max || tc.rate == wasiserve.NoOutputLimit && n != flood {
				t.Errorf("the guest wrote %d bytes of a %d-byte flood; want at most %d", n, flood, max)
			}
			r.stop(t)
		})
	}
}

// TestDyingGuestAtScale is the attack's shape: a 512 MiB guest with
// 20,000 goroutines (as 100 connections of 100 streams each hold) runs
// out of memory, and its runtime dumps them all (18 MB). With Restart
// the guest must answer again, its output within the rate. It logs how
// long that took; set WASISERVE_FIGURES=1 to run it (2 minutes).
func TestDyingGuestAtScale(t *testing.T) {
	if os.Getenv("WASISERVE_FIGURES") != "1" {
		t.Skip("set WASISERVE_FIGURES=1: a figure for docs/RELIABILITY.md, 2 minutes of two cores")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			stderr := &countingWriter{}
			began := time.Now()
			r := startServer(t, name, enginetest.Dying.Path(t), wasiserve.Options{Restart: true, MaxMemory: 512 << 20,
				Env: []string{"DYINGGUEST_PARKED=20000"}, Stderr: stderr})
			r.get(t)
			oom := time.Now()
			go func() {
				if resp, err := (&http.Client{Timeout: 5 * time.Minute}).Get(r.url + "/oom"); err == nil {
					resp.Body.Close()
				}
			}()
			waitRestarts(t, r, 1)
			restarted := time.Since(oom)
			r.get(t)
			n, max := stderr.n.Load(), 2*engine.DefaultOutputRate*engine.OutputBurstSeconds+int64(time.Since(began).Seconds()+1)*engine.DefaultOutputRate
			t.Logf("%s: restarted %s after GET /oom, answering again after %s; %d bytes reached stderr (%d dropped)",
				name, restarted.Round(time.Millisecond), time.Since(oom).Round(time.Millisecond), n, r.srv.Stats().Instances[0].OutputDropped)
			if n > max {
				t.Errorf("%d bytes reached stderr, more than the %d the rate allows", n, max)
			}
			r.stop(t)
		})
	}
}
