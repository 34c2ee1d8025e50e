package engine

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBudget: the tables take 1/16 of MaxMemory over MaxTables, the
// memory the rest; the two together never pass MaxMemory.
func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		maxMemory uint64
		want      Budget
	}{
		{0, Budget{MemoryPages: 0, TableElements: 8 << 20}},
		{4 << 30, Budget{MemoryPages: 61440, TableElements: 8 << 20}},
		{64 << 20, Budget{MemoryPages: 960, TableElements: 131072}},
		{1 << 20, Budget{MemoryPages: 15, TableElements: 2048}},
		{100<<20 + 12345, Budget{MemoryPages: 1500, TableElements: 204824}},
	} {
		got := Options{MaxMemory: tc.maxMemory}.Budget()
		if got != tc.want {
			t.Errorf("MaxMemory %d: %+v, want %+v", tc.maxMemory, got, tc.want)
		}
		if total := uint64(max(got.MemoryBytes(), 0)) + uint64(got.TableElements)*TableElementSize*MaxTables; tc.maxMemory != 0 && total > tc.maxMemory {
			t.Errorf("MaxMemory %d: memory and tables may take %d", tc.maxMemory, total)
		}
	}
}

// TestCheckDeclared counts the memories and tables a binary defines.
func TestCheckDeclared(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	hostile := filepath.Join(filepath.Dir(file), "..", "..", "internal", "enginetest", "testdata", "hostile")
	for _, tc := range []struct {
		module, wantErr string
	}{
		{"table_grow", ""},
		{"poll_huge", ""},
		{"tables64", "defines 64 tables"},
		{"memories100", "defines 100 linear memories"},
	} {
		wasm, err := os.ReadFile(filepath.Join(hostile, tc.module+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		err = CheckDeclared(tc.module, wasm)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.module, err, tc.wantErr)
		}
	}
	for _, bad := range [][]byte{nil, []byte("garbage!"), []byte("\x00asm\x01\x00\x00\x00\x04\xff"), []byte("\x00asm\x01\x00\x00\x00\x05\x01")} {
		if err := CheckDeclared("bad", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
