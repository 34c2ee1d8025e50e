package supervise

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// TestStopExit: once the stop began, any exit status is an ordinary end,
// logged at info level; a trap and other errors are still errors.
func TestStopExit(t *testing.T) {
	other := errors.New("stop 127.0.0.1:1: the guest did not stop")
	for _, tc := range []struct {
		name    string
		err     error
		want    error
		wantLog string
	}{
		{"exit 0", nil, nil, `level=INFO msg="guest stopped" drained=true`},
		{"exit 1", &engine.ExitError{Code: 1}, nil, `level=INFO msg="guest exited after the listener stopped" code=1`},
		{"exit 2", &engine.ExitError{Code: 2}, nil, `level=INFO msg="guest exited after the listener stopped" code=2`},
		{"trap", &engine.ExitError{Code: 1, Trap: "unreachable"}, &engine.ExitError{Code: 1, Trap: "unreachable"}, ""},
		{"not stopped", other, other, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			err := stopExit(slog.New(slog.NewTextHandler(&logs, nil)), tc.err)
			if (err == nil) != (tc.want == nil) || err != nil && err.Error() != tc.want.Error() {
				t.Errorf("stopExit(%v) = %v, want %v", tc.err, err, tc.want)
			}
			if !strings.Contains(logs.String(), tc.wantLog) || tc.wantLog == "" && logs.Len() > 0 {
				t.Errorf("logged %q, want %q", logs.String(), tc.wantLog)
			}
		})
	}
}
