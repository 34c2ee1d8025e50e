package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wasiserve/wasiserve/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, data := range []string{"first", "second, longer"} {
		if err := atomicfile.Write(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left in the directory, want 1 (no temporary file)", len(entries))
	}
	if err := atomicfile.Write(filepath.Join(dir, "missing", "f"), nil); err == nil {
		t.Error("Write into a missing directory: nil error")
	}
}
