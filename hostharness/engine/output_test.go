package engine

import (
	"bytes"
	"strings"
	"testing"
)

// TestFatalScanner: the Go runtime's fatal banner is found at the start
// of a line however the stream is cut into writes, and nowhere else.
func TestFatalScanner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []string
		want   string // the banner's line; "" for none
	}{
		{"first line", []string{"fatal error: out of memory\n"}, "fatal error: out of memory"},
		{"after other lines", []string{"runtime: out of memory: cannot allocate 1048576-byte block\nfatal error: out of memory\n\ngoroutine 1 [running]:\n"}, "fatal error: out of memory"},
		{"byte by byte", strings.Split("log\nfatal error: all goroutines are asleep - deadlock!\n", ""), "fatal error: all goroutines are asleep - deadlock!"},
		{"as the runtime prints it", []string{"\n", "fatal error: ", "out of memory", "\n"}, "fatal error: out of memory"},
		{"after an empty line", []string{"x\n\nfatal error: x\n"}, "fatal error: x"},
		{"mid-line", []string{"request failed: fatal error: none\n"}, ""},
		{"split mid-line", []string{"request failed: fatal", " error: none\n"}, ""},
		{"no line end yet", []string{"fatal error: out of mem"}, ""},
		{"almost", []string{"fatal error:x\nfatal errors: y\n"}, ""},
		{"long line cut", []string{"fatal error: " + strings.Repeat("y", 500) + "\n"}, ("fatal error: " + strings.Repeat("y", 500))[:maxFatalLine]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s fatalScanner
			for _, p := range tc.pieces {
				s.scan([]byte(p))
			}
			got, seen := s.banner()
			if seen != (tc.want != "") || got != tc.want {
				t.Errorf("banner = %q, %v; want %q", got, seen, tc.want)
			}
		})
	}
}

// TestOutputLimiter: an instance's output passes up to the burst, the
// rest is dropped and counted per stream, the guest's writes all succeed,
// and with no limit everything passes.
func TestOutputLimiter(t *testing.T) {
	var out bytes.Buffer
	l := newOutputLimiter(1 << 10) // 1 KiB/s, a 4 KiB burst
	stderr, stdout := l.writer(&out, streamStderr), l.writer(&out, streamStdout)
	line := bytes.Repeat([]byte("x"), 100)
	for range 100 { // 10,000 bytes at once: far faster than the rate
		if n, err := stderr.Write(line); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(line))
		}
	}
	if n, err := stdout.Write(make([]byte, 3000)); n != 3000 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	// The elapsed time may add a few tokens, never the 1,000 of a second.
	if kept := out.Len(); kept < 4000 || kept > 4500 {
		t.Errorf("kept %d bytes, want about the 4096 of the burst", kept)
	}
	dropped := l.takeDropped()
	if total := dropped[streamStdout] + dropped[streamStderr]; total != uint64(13000-out.Len()) || total != l.dropped.Load() {
		t.Errorf("dropped %v (total %d), kept %d: want the rest of 13000", dropped, l.dropped.Load(), out.Len())
	}
	if dropped[streamStdout] != 3000 {
		t.Errorf("dropped %d bytes of stdout, want all 3000", dropped[streamStdout])
	}
	if again := l.takeDropped(); again != [streams]uint64{} {
		t.Errorf("takeDropped again = %v, want zeros", again)
	}
	if got := l.attempted.Load(); got != 10000 {
		t.Errorf("attempted %d bytes of stderr, want 10000", got)
	}

	out.Reset()
	fresh := newOutputLimiter(1<<10).writer(&out, streamStderr)
	if n, _ := fresh.Write(make([]byte, 10000)); n != 10000 || out.Len() != 4096 {
		t.Errorf("one write over the burst: wrote %d, kept %d; want its first 4096 bytes kept", n, out.Len())
	}
	out.Reset()
	unlimited := newOutputLimiter(-1).writer(&out, streamStderr)
	if n, _ := unlimited.Write(make([]byte, 1<<20)); n != 1<<20 || out.Len() != 1<<20 {
		t.Errorf("no limit: wrote %d, kept %d; want all 1 MiB", n, out.Len())
	}
}

// TestLiveness: a guest is judged dying only after the banner, with no
// socket progress since, and stderr written in each of FatalStallTicks
// intervals in a row; socket progress after the banner makes it alive for
// good.
func TestLiveness(t *testing.T) {
	type tick struct {
		progress, attempted uint64
		banner              bool
	}
	// dumping is n ticks of stderr output with the banner and no progress.
	dumping := func(progress uint64, n int) []tick {
		var ticks []tick
		for i := range n {
			ticks = append(ticks, tick{progress, uint64(1000 * (i + 1)), true})
		}
		return ticks
	}
	for _, tc := range []struct {
		name  string
		ticks []tick
		want  int // the tick (from 1) judged dying; 0 for none
	}{
		{"no banner, output and no progress", []tick{{5, 100, false}, {5, 200, false}, {5, 300, false}, {5, 400, false}, {5, 500, false}}, 0},
		{"banner, dumping, no progress", dumping(5, 5), FatalStallTicks},
		{"banner, then quiet", []tick{{5, 100, true}, {5, 100, true}, {5, 100, true}, {5, 100, true}, {5, 100, true}}, 0},
		{"banner, output with a quiet tick between", []tick{{5, 100, true}, {5, 200, true}, {5, 200, true}, {5, 300, true}, {5, 400, true}, {5, 500, true}}, 6},
		{"banner, then serving while logging", []tick{{5, 100, true}, {9, 200, true}, {9, 300, true}, {9, 400, true}, {9, 500, true}, {9, 600, true}}, 0},
		{"serving then stalled after the banner", []tick{{5, 100, true}, {6, 200, true}, {6, 300, true}, {6, 400, true}, {6, 500, true}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l liveness
			got := 0
			for i, tk := range tc.ticks {
				if l.tick(tk.progress, tk.attempted, tk.banner) && got == 0 {
					got = i + 1
				}
			}
			if got != tc.want {
				t.Errorf("judged dying at tick %d, want %d", got, tc.want)
			}
		})
	}
}
