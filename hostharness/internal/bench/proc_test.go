package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	// Field layout of proc_pid_stat(5): utime, stime, cutime, cstime are
	// 14-17; 7+5+3+2 ticks = 170 ms.
	const rest = " S 42 100 100 0 -1 4194304 500 0 0 0 7 5 3 2 20 0 3 0 1234 10000000 300 18446744073709551615"
	tests := []struct {
		name    string
		stat    string
		want    procStat
		wantErr string
	}{
		{"plain", "123 (echo-native)" + rest, procStat{PPID: 42, CPU: 170 * time.Millisecond}, ""},
		{"name with spaces and parens", "123 (a b) (c))" + rest, procStat{PPID: 42, CPU: 170 * time.Millisecond}, ""},
		{"no name", "123 echo S 42", procStat{}, "no command name"},
		{"short", "123 (echo) S 42 100", procStat{}, "fields after the command name"},
		{"bad ppid", "123 (echo) S x" + rest[5:], procStat{}, "ppid"},
		{"bad time", strings.Replace("123 (echo)"+rest, " 7 5 ", " 7 x ", 1), procStat{}, "times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.stat))
			if checkError(t, "parseStat", err, tt.wantErr) {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseStat (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseHWM(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr string
	}{
		{"real layout", "Name:\techo\nVmPeak:\t  1000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t  1024 kB\n", 2048 << 10, ""},
		{"missing", "Name:\techo\nVmRSS:\t  1024 kB\n", 0, "no VmHWM"},
		{"bad unit", "VmHWM:\t 2 MB\n", 0, "unexpected VmHWM"},
		{"bad number", "VmHWM:\t x kB\n", 0, "VmHWM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHWM([]byte(tt.status))
			if checkError(t, "parseHWM", err, tt.wantErr) {
				return
			}
			if got != tt.want {
				t.Errorf("parseHWM = %d, want %d", got, tt.want)
			}
		})
	}
}

// checkError fails t unless err contains wantErr (or is nil when wantErr
// is empty) and reports whether an error was expected.
func checkError(t *testing.T, what string, err error, wantErr string) bool {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("%s error = %v, want one containing %q", what, err, wantErr)
	}
	return true
}
