package main

import (
	"io"
	"log/slog"
	"strings"
)

// newLogger returns the commands' logger: text to w, one line per record
// (see oneLineAttr).
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: oneLineAttr}))
}

// oneLineAttr makes a string or error value of more than one line (an
// errors.Join, a compiler's output) one line: its lines joined with "; ",
// each said once, rather than quoted with literal \n.
func oneLineAttr(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch v := a.Value.Any().(type) {
	case string:
		s = v
	case error:
		s = v.Error()
	default:
		return a
	}
	if !strings.Contains(s, "\n") {
		return a
	}
	var lines []string
	seen := map[string]bool{}
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" && !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	return slog.String(a.Key, strings.Join(lines, "; "))
}
