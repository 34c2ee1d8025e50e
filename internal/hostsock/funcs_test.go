package hostsock

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// newTestTable returns a table lending a fresh loopback listener at fd 3.
func newTestTable(t *testing.T, ctx context.Context) *Table {
	table, _ := newTestListener(t, ctx)
	return table
}

// newTestListener is newTestTable, also returning the listener's address.
func newTestListener(t testing.TB, ctx context.Context) (*Table, string) {
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
	return table, ln.Addr().String()
}

func funcNamed(t testing.TB, name string) Func {
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

// newRoundTrip accepts a connection on a fresh table and returns one
// request's round trip on it, as a Go guest makes it: a read that finds no
// data (EAGAIN), the read of 4 bytes the client sent, the write of them
// back. With sock, sock_recv and sock_send instead of fd_read and fd_write.
// The returned function allocates nothing itself.
func newRoundTrip(tb testing.TB, sock bool) func() {
	table, addr := newTestListener(tb, context.Background())
	client, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	// Memory: an iovec at 0 naming 16 bytes at 64; results at 32 and 40.
	mem := iovecMemory(64, 16)
	accept := funcNamed(tb, "sock_accept")
	stack := []uint64{3, uint64(fdflagNonblock), 32}
	if accept.Call(table, mem, stack) != Served || Errno(stack[0]) != errnoSuccess {
		tb.Fatalf("sock_accept: errno %d", stack[0])
	}
	fd := uint64(binary.LittleEndian.Uint32(mem[32:]))
	in, out := funcNamed(tb, "fd_read"), funcNamed(tb, "fd_write")
	inParams, outParams := []uint64{fd, 0, 1, 32}, []uint64{fd, 0, 1, 32}
	if sock {
		in, out = funcNamed(tb, "sock_recv"), funcNamed(tb, "sock_send")
		inParams, outParams = []uint64{fd, 0, 1, 0, 32, 40}, []uint64{fd, 0, 1, 0, 32}
	}
	ping, reply := []byte("ping"), make([]byte, 4)
	readable := []pollFD{{Fd: int32(table.fds[uint32(fd)].host), Events: pollIn}}
	// The call's stack and the memory as an interface, made once.
	st, view := make([]uint64, 8), Memory(mem)
	call := func(f *Func, params []uint64) Errno {
		n := copy(st, params)
		if out := f.Call(table, view, st[:n]); out != Served {
			tb.Fatalf("%s: outcome %d", f.Name, out)
		}
		return Errno(st[0])
	}
	return func() {
		if errno := call(&in, inParams); errno != errnoAgain {
			tb.Fatalf("%s with nothing sent: errno %d, want EAGAIN", in.Name, errno)
		}
		if _, err := client.Write(ping); err != nil {
			tb.Fatal(err)
		}
		// The bytes may take a moment to cross loopback: wait in the kernel,
		// as the guest's poll_oneoff would, so that a count of
		// instructions does not depend on timing.
		if errno := ppoll(readable, time.Time{}); errno != errnoSuccess {
			tb.Fatalf("ppoll: errno %d", errno)
		}
		if errno := call(&in, inParams); errno != errnoSuccess {
			tb.Fatalf("%s: errno %d", in.Name, errno)
		}
		binary.LittleEndian.PutUint32(mem[4:], 4) // send back what came
		if errno := call(&out, outParams); errno != errnoSuccess {
			tb.Fatalf("%s: errno %d", out.Name, errno)
		}
		binary.LittleEndian.PutUint32(mem[4:], 16)
		if _, err := io.ReadFull(client, reply); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestConnIOAllocs: a request's round trip on an accepted connection
// allocates nothing in the host.
func TestConnIOAllocs(t *testing.T) {
	for _, sock := range []bool{false, true} {
		if allocs := testing.AllocsPerRun(100, newRoundTrip(t, sock)); allocs != 0 {
			t.Errorf("sock functions %v: %.1f allocations per round trip, want 0", sock, allocs)
		}
	}
}

// BenchmarkConnRoundTrip is one request's host calls on a connection; run
// it under callgrind with a fixed -test.benchtime=Nx to count instructions.
func BenchmarkConnRoundTrip(b *testing.B) {
	roundTrip := newRoundTrip(b, false)
	b.ReportAllocs()
	for b.Loop() {
		roundTrip()
	}
}
