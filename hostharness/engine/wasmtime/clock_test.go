//go:build cgo

package wasmtime

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	wt "github.com/bytecodealliance/wasmtime-go/v42"
)

// clockWAT exports clock_time_get as "clock", with or without memory.
const clockWAT = `(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  %s
  (func (export "clock") (param i32 i64 i32) (result i32)
    (call $clock (local.get 0) (local.get 1) (local.get 2)))
  (func (export "_start")))`

// wasiClock is clockWAT instantiated with wasmtime's own WASI only: the
// reference the engine's clock_time_get is compared with.
type wasiClock struct {
	store *wt.Store
	inst  *wt.Instance
}

func newWASIClock(t *testing.T) *wasiClock {
	t.Helper()
	eng := newWasmtime()
	t.Cleanup(eng.Close)
	wasm, err := wt.Wat2Wasm(strings.Replace(clockWAT, "%s", withMemory, 1))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := wt.NewModule(eng, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mod.Close)
	l := wt.NewLinker(eng)
	t.Cleanup(l.Close)
	if err := l.DefineWasi(); err != nil {
		t.Fatal(err)
	}
	store := wt.NewStore(eng)
	t.Cleanup(store.Close)
	store.SetWasi(wt.NewWasiConfig())
	store.SetEpochDeadline(1 << 40)
	inst, err := l.Instantiate(store, mod)
	if err != nil {
		t.Fatal(err)
	}
	return &wasiClock{store: store, inst: inst}
}

// clockCall is one call of "clock" and what it left at its result.
type clockCall struct {
	errno   int32
	trapped bool
	value   uint64 // the 8 bytes at the result, where they are in memory
}

// callClock calls "clock" of inst in store with the result's bytes set to
// 0xee first, and reads them back after.
func callClock(t *testing.T, store *wt.Store, inst *wt.Instance, id int32, result uint32) clockCall {
	t.Helper()
	mem := inst.GetExport(store, "memory").Memory().UnsafeData(store)
	inMemory := uint64(result)+8 <= uint64(len(mem))
	if inMemory {
		copy(mem[result:], []byte{0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee})
	}
	v, err := inst.GetFunc(store, "clock").Call(store, id, int64(1000), int32(result))
	var c clockCall
	if err != nil {
		c.trapped = true
	} else {
		c.errno = v.(int32)
	}
	if inMemory {
		c.value = binary.LittleEndian.Uint64(mem[result:])
	}
	return c
}

// untouched is the result's bytes when a call did not write them.
const untouched = 0xeeeeeeeeeeeeeeee

// TestClockTimeGetMatchesWASI compares the engine's clock_time_get,
// served in the trampoline (clock.c), with wasmtime's own: the same errno
// and a value of the same clock wherever wasmtime answers, and EINVAL or
// EFAULT (never a trap) where wasmtime traps, with nothing written.
func TestClockTimeGetMatchesWASI(t *testing.T) {
	const (
		errnoSuccess = 0
		errnoFault   = 21
		errnoInval   = 28
	)
	created := time.Now()
	ref := newWASIClock(t)
	r := newTestRunOf(t, strings.Replace(clockWAT, "%s", withMemory, 1))
	for _, tc := range []struct {
		name   string
		id     int32
		result uint32
		// whereTrap is the engine's errno where wasmtime's WASI traps.
		whereTrap int32
	}{
		{"realtime", 0, 64, 0},
		{"monotonic", 1, 64, 0},
		{"process CPU time", 2, 64, 0},
		{"thread CPU time", 3, 64, 0},
		{"realtime in the last bytes of memory", 0, 65536 - 8, 0},
		{"unknown clock", 4, 64, errnoInval},
		{"clock id 0xffffffff", -1, 64, errnoInval},
		{"result past memory", 0, 65536 - 7, errnoFault},
		{"result at 0xffffffff", 0, 0xffffffff, errnoFault},
		{"unaligned result", 0, 65, errnoSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			want := callClock(t, ref.store, ref.inst, tc.id, tc.result)
			got := callClock(t, r.store, r.guest, tc.id, tc.result)
			after := time.Now()
			if got.trapped {
				t.Fatal("the engine's clock_time_get trapped")
			}
			wantErrno := want.errno
			if want.trapped {
				wantErrno = tc.whereTrap
			}
			if got.errno != wantErrno {
				t.Fatalf("errno %d, want %d (wasmtime's WASI: errno %d, trapped %v)", got.errno, wantErrno, want.errno, want.trapped)
			}
			if got.errno != errnoSuccess {
				if got.value != 0 && got.value != untouched {
					t.Errorf("errno %d, and the result was written: %#x", got.errno, got.value)
				}
				return
			}
			switch tc.id {
			case 0:
				lo, hi := uint64(before.UnixNano()), uint64(after.UnixNano())
				if got.value < lo || got.value > hi {
					t.Errorf("realtime %d, not within [%d, %d]", got.value, lo, hi)
				}
				if !want.trapped && (want.value < lo || want.value > hi) {
					t.Errorf("wasmtime's realtime %d, not within [%d, %d]", want.value, lo, hi)
				}
			case 1:
				// Both count from their context's creation, after created.
				since := uint64(time.Since(created))
				for who, v := range map[string]uint64{"the engine's": got.value, "wasmtime's": want.value} {
					if v > since {
						t.Errorf("%s monotonic clock %d, more than the %d ns since the run was created", who, v, since)
					}
				}
				if again := callClock(t, r.store, r.guest, 1, tc.result); again.value < got.value {
					t.Errorf("monotonic clock went back: %d, then %d", got.value, again.value)
				}
			}
		})
	}
}

// TestClockTimeGetEdges: a module without memory gets EFAULT, and a run
// the host stops ends at its next clock_time_get.
func TestClockTimeGetEdges(t *testing.T) {
	bare := newTestRunOf(t, strings.Replace(clockWAT, "%s", "", 1))
	v, err := bare.guest.GetFunc(bare.store, "clock").Call(bare.store, int32(0), int64(0), int32(64))
	if err != nil || v.(int32) != 21 {
		t.Errorf("clock_time_get without memory: %v, %v; want errno 21 (EFAULT)", v, err)
	}

	r := newTestRunOf(t, strings.Replace(clockWAT, "%s", withMemory, 1))
	r.interrupt()
	_, err = r.guest.GetFunc(r.store, "clock").Call(r.store, int32(0), int64(0), int32(64))
	if err == nil || !strings.Contains(err.Error(), "guest stopped by the host") {
		t.Errorf("clock_time_get in a stopped run: %v, want the host's stop", err)
	}
}
