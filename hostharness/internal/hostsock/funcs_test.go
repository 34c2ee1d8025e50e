package hostsock

import (
	"context"
	"net"
	"testing"
)

// newTestTable returns a table lending a fresh loopback listener at fd 3.
func newTestTable(t *testing.T, ctx context.Context) *Table {
	t.Helper()
	if err := Supported(); err != nil {
		t.Skip("no host socket layer here:", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	table, err := NewTable(ctx, ln, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { table.Close() })
	return table
}

func funcNamed(t *testing.T, name string) Func {
	t.Helper()
	for _, f := range Funcs() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no Func %s", name)
	return Func{}
}

// TestCallWithoutMemory: a module without memory that calls the table's
// functions on its fds gets EFAULT, not a host panic.
func TestCallWithoutMemory(t *testing.T) {
	table := newTestTable(t, context.Background())
	for _, tc := range []struct {
		name  string
		stack []uint64
	}{
		{"sock_accept", []uint64{3, 0, 16}},
		{"fd_fdstat_get", []uint64{3, 16}},
		{"fd_filestat_get", []uint64{3, 16}},
		{"poll_oneoff", []uint64{0, 64, 1, 128}},
		{"sock_open", []uint64{1, 1, 16}},
		{"sock_getaddrinfo", []uint64{0, 4, 0, 0, 0, 0, 1, 16}},
	} {
		f := funcNamed(t, tc.name)
		if got := f.Call(table, nil, tc.stack); got != Served {
			t.Errorf("%s: outcome %d, want Served", tc.name, got)
			continue
		}
		if Errno(tc.stack[0]) != errnoFault {
			t.Errorf("%s without memory: errno %d, want EFAULT (%d)", tc.name, tc.stack[0], errnoFault)
		}
	}
}

// TestCallOutcomes: foreign fds are delegated, a stopped table stops.
func TestCallOutcomes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	table := newTestTable(t, ctx)
	mem := make(byteMemory, 64)
	read := funcNamed(t, "fd_read")
	if got := read.Call(table, mem, []uint64{1, 0, 0, 8}); got != Delegate {
		t.Errorf("fd_read on stdout: outcome %d, want Delegate", got)
	}
	if got := read.Call(table, mem, []uint64{3, 0, 0, 8}); got != Served {
		t.Errorf("fd_read on the listener: outcome %d, want Served", got)
	}
	cancel()
	if got := read.Call(table, mem, []uint64{3, 0, 0, 8}); got != Stop {
		t.Errorf("fd_read after cancel: outcome %d, want Stop", got)
	}
}

// TestFuncsUnique: every name once, with as many names as types.
func TestFuncsUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Funcs() {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if len(f.Params) != len(f.ParamNames) || len(f.Params) == 0 {
			t.Errorf("%s: %d types, %d names", f.Name, len(f.Params), len(f.ParamNames))
		}
	}
}
