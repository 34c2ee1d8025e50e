package engine

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ExitError reports a guest that exited with a non-zero code or trapped.
type ExitError struct {
	// Code is the guest's exit code; 1 for a trap.
	Code int
	// Trap is the trap message, empty for a plain exit; at most
	// MaxTrapBytes (see TrapError).
	Trap string
}

// Bounds of a trap message. A deep recursion's backtrace has a line per
// frame (16,370 on wasmtime), and a guest chooses its function names.
const (
	// MaxTrapBytes bounds ExitError.Trap.
	MaxTrapBytes = 4096
	// trapHeadFrames and trapTailFrames are the backtrace frames kept
	// from the start and the end of a longer run of them.
	trapHeadFrames = 8
	trapTailFrames = 4
	// maxTrapLine bounds one line of the message.
	maxTrapLine = 240
)

// backtraceFrame matches one frame line of a backtrace ("  12: 0x32 - f").
var backtraceFrame = regexp.MustCompile(`^\s*\d+: `)

// TrapError is the ExitError of a trap with message msg, bounded for
// every engine: each run of backtrace frames longer than trapHeadFrames +
// trapTailFrames keeps its first and last frames and counts the others,
// long lines are cut, and the whole at MaxTrapBytes.
func TrapError(msg string) *ExitError {
	var out []string
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && backtraceFrame.MatchString(lines[j]) {
			j++
		}
		if j == i { // not a frame
			out = append(out, cutLine(lines[i]))
			i++
			continue
		}
		frames := lines[i:j]
		if n := len(frames) - trapHeadFrames - trapTailFrames; n > 1 {
			frames = slices.Concat(frames[:trapHeadFrames:trapHeadFrames],
				[]string{fmt.Sprintf("    ... %d frames elided ...", n)}, frames[len(frames)-trapTailFrames:])
		}
		for _, f := range frames {
			out = append(out, cutLine(f))
		}
		i = j
	}
	trap := strings.Join(out, "\n")
	if len(trap) > MaxTrapBytes {
		const cut = "\n... (cut)"
		trap = strings.ToValidUTF8(trap[:MaxTrapBytes-len(cut)], "") + cut
	}
	return &ExitError{Code: 1, Trap: trap}
}

// cutLine bounds one line of a trap message at maxTrapLine bytes.
func cutLine(line string) string {
	if len(line) <= maxTrapLine {
		return line
	}
	return strings.ToValidUTF8(line[:maxTrapLine], "") + "..."
}

func (e *ExitError) Error() string {
	if e.Trap != "" {
		return "guest trapped: " + e.Trap
	}
	return fmt.Sprintf("guest exited with code %d", e.Code)
}

// ExitCode maps a Run result to a process exit status.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) && exit.Code > 0 && exit.Code < 256 {
		return exit.Code
	}
	return 1
}
