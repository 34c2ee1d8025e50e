//go:build unix

package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadModule: only a regular file of at most MaxModuleSize is read;
// a device, a FIFO (which must not block the open) and a huge sparse
// file are refused with a line saying why.
func TestReadModule(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.wasm")
	if err := os.WriteFile(good, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	devZero := filepath.Join(dir, "zero.wasm")
	if err := os.Symlink("/dev/zero", devZero); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.wasm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.wasm")
	if err := os.WriteFile(sparse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, MaxModuleSize+1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"regular", good, ""},
		{"symlink to /dev/zero", devZero, "not a regular file (a character device)"},
		{"fifo", fifo, "not a regular file (a FIFO)"},
		{"directory", dir, "not a regular file (a directory)"},
		{"one byte too big", sparse, "512 MiB, more than the 512 MiB"},
		{"missing", filepath.Join(dir, "nope.wasm"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := CheckModuleFile(tc.path)
			wasm, err := ReadModule(context.Background(), tc.path)
			for what, err := range map[string]error{"CheckModuleFile": check, "ReadModule": err} {
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Errorf("%s: %v, want error %q", what, err, tc.wantErr)
				}
			}
			if tc.wantErr == "" && len(wasm) != 8 {
				t.Errorf("read %d bytes, want 8", len(wasm))
			}
		})
	}
}
