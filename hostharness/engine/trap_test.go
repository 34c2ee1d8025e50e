package engine

import (
	"fmt"
	"strings"
	"testing"
)

func TestTrapError(t *testing.T) {
	var backtrace strings.Builder
	backtrace.WriteString("error while executing at wasm backtrace:\n")
	for i := range 16370 {
		fmt.Fprintf(&backtrace, "  %5d:   0x32 - <unknown>!<wasm function 0>\n", i)
	}
	backtrace.WriteString("\nCaused by:\n    wasm trap: call stack exhausted\n")
	for _, tc := range []struct {
		name string
		msg  string
		want []string // substrings of the bounded message, in order
	}{
		{"short", "wasm trap: unreachable", []string{"wasm trap: unreachable"}},
		{"deep backtrace", backtrace.String(), []string{"backtrace:", "    0:", "    7:", "... 16358 frames elided ...", "16366:", "16369:", "Caused by:", "call stack exhausted"}},
		{"long line", strings.Repeat("f", 1<<20), []string{strings.Repeat("f", maxTrapLine) + "..."}},
		{"many lines", strings.Repeat("a line that is not a frame\n", 1<<16), []string{"a line", "... (cut)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TrapError(tc.msg).Trap
			if len(got) > MaxTrapBytes {
				t.Errorf("%d bytes, want at most %d", len(got), MaxTrapBytes)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q missing (in order) from:\n%.1500s", w, got)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(got, "    8:") {
				t.Errorf("frame 8 was kept:\n%s", got)
			}
		})
	}
}
