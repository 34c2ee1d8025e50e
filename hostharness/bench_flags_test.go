//go:build !serveonly

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseHarnesses(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "hostharness-old")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value   string
		want    otherHarness
		wantErr string
	}{
		{"old=" + exe, otherHarness{engine: "old", path: exe}, ""},
		{"old", otherHarness{}, "want ENGINE=PATH"},
		{"=" + exe, otherHarness{}, "want ENGINE=PATH"},
		{"old=" + filepath.Join(dir, "missing"), otherHarness{}, "no such file"},
		{"old=" + plain, otherHarness{}, "not an executable file"},
		{"old=" + dir, otherHarness{}, "not an executable file"},
	} {
		got, err := parseHarnesses([]string{tc.value})
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %v, want an error with %q", tc.value, err, tc.wantErr)
			}
		case err != nil || len(got) != 1 || got[0] != tc.want:
			t.Errorf("%q: %v, %v; want %+v", tc.value, got, err, tc.want)
		}
	}
}
