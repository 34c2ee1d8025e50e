package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk send the SmallEcho request.
const wrkScript = `wrk.method = "POST"
wrk.body = "ping"
wrk.headers["Content-Type"] = "application/octet-stream"
`

var (
	wrkRate   = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkErrors = regexp.MustCompile(`(?m)^\s*(Non-2xx or 3xx responses: \d+|Socket errors: .*)$`)
)

// wrkSeconds is d in whole seconds, at least 1: wrk's -d has no finer unit.
func wrkSeconds(d time.Duration) int {
	return max(1, int(math.Round(d.Seconds())))
}

// runWrk runs wrk with one thread and conns connections against addr for
// about d, sending SmallEcho, and returns its requests/s and error lines.
func runWrk(ctx context.Context, wrk, workDir, addr string, conns int, d time.Duration) (float64, string, error) {
	script := filepath.Join(workDir, "small-echo.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return 0, "", fmt.Errorf("wrk script: %w", err)
	}
	secs := wrkSeconds(d)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrk, "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "10s", "-s", script, "http://"+addr+"/echo")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, "", fmt.Errorf("wrk: %w\n%s", err, out.String())
	}
	m := wrkRate.FindSubmatch(out.Bytes())
	if m == nil {
		return 0, "", fmt.Errorf("wrk: no Requests/sec line in:\n%s", out.String())
	}
	rate, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, "", fmt.Errorf("wrk: %w", err)
	}
	var errs []string
	for _, e := range wrkErrors.FindAllSubmatch(out.Bytes(), -1) {
		errs = append(errs, string(e[1]))
	}
	return rate, strings.Join(errs, "; "), nil
}
