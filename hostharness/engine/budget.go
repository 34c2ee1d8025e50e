package engine

import (
	"errors"
	"fmt"
)

// Limits on what one guest instance may declare, which every embedded
// engine enforces: a cap per memory or per table alone lets a module
// multiply it by declaring more of them.
const (
	// MaxMemories is the most linear memories an instance may have: the
	// one a Go, TinyGo or Rust guest declares. A multi-memory module is
	// refused at Load.
	MaxMemories = 1
	// MaxTables is the most tables an instance may have (a Go guest
	// declares one); a module with more is refused at Load.
	MaxTables = 4
	// TableElementSize is what one table element costs the host, in
	// bytes, on both embedded engines (a pointer or a 64-bit reference).
	TableElementSize = 8
	// tableShareDivisor: the instance's tables, all together, may take
	// 1/16 of its budget (4 MiB of 64 MiB, 256 MiB of 4 GiB: 131,072 or
	// 8,388,608 elements per table; a Go guest's one table has about
	// 1.7 elements per function, 10,233 for the echo guest).
	tableShareDivisor = 16
)

// Budget is what one guest instance may take of the host's memory, as the
// engines enforce it: its linear memory (at most MaxMemories) and its
// tables (at most MaxTables), grown however the guest likes, stay within
// Options.MaxMemory together.
type Budget struct {
	// MemoryPages caps the instance's linear memory, in 64 KiB pages; 0
	// means no cap but wasm32's own (Wasm32MaxPages, 4 GiB).
	MemoryPages uint32
	// TableElements caps each of the instance's tables, in elements.
	TableElements uint32
}

// Budget splits MaxMemory (4 GiB when 0) between the linear memory and
// the tables: the tables may take 1/16 of it between them, split evenly
// over MaxTables; the memory the rest, rounded down to pages. With
// MaxMemory 0 the memory keeps wasm32's 4 GiB and the tables the share
// of a 4 GiB budget.
func (o Options) Budget() Budget {
	total := o.MaxMemory
	if total == 0 {
		total = Wasm32MaxPages * WasmPageSize
	}
	tables := total / tableShareDivisor
	b := Budget{TableElements: uint32(max(1, tables/TableElementSize/MaxTables))}
	if o.MaxMemory != 0 {
		b.MemoryPages = uint32(max(1, min((total-tables)/WasmPageSize, Wasm32MaxPages)))
	}
	return b
}

// MemoryBytes is the cap on the linear memory in bytes, or -1 for none
// but wasm32's.
func (b Budget) MemoryBytes() int64 {
	if b.MemoryPages == 0 {
		return -1
	}
	return int64(b.MemoryPages) * WasmPageSize
}

// declared counts the linear memories and tables that a module's binary
// defines (its memory and table sections; imported ones need a module
// that exports them, which the engines' hosts do not have).
func declared(wasm []byte) (memories, tables uint32, err error) {
	const header = 8 // magic and version
	if len(wasm) < header || string(wasm[:4]) != "\x00asm" {
		return 0, 0, errors.New("not a WebAssembly binary")
	}
	for rest := wasm[header:]; len(rest) > 0; {
		id := rest[0]
		size, n := uleb32(rest[1:])
		if n == 0 || uint64(size) > uint64(len(rest)-1-n) {
			return 0, 0, fmt.Errorf("section %d: bad size", id)
		}
		body := rest[1+n : 1+n+int(size)]
		rest = rest[1+n+int(size):]
		const tableSection, memorySection = 4, 5
		if id != tableSection && id != memorySection {
			continue
		}
		count, n := uleb32(body)
		if n == 0 {
			return 0, 0, fmt.Errorf("section %d: bad count", id)
		}
		if id == tableSection {
			tables = count
		} else {
			memories = count
		}
	}
	return memories, tables, nil
}

// uleb32 decodes an unsigned LEB128 number of at most 32 bits from b,
// returning it and the bytes it took (0 when b holds none).
func uleb32(b []byte) (uint32, int) {
	var v uint64
	for i := 0; i < len(b) && i < 5; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0
			}
			return uint32(v), i + 1
		}
	}
	return 0, 0
}

// CheckDeclared refuses a module (at path, for the error) that defines
// more memories or tables than an instance may have. The engines call it
// once they have compiled wasm, which is then a valid binary.
func CheckDeclared(path string, wasm []byte) error {
	memories, tables, err := declared(wasm)
	switch {
	case err != nil:
		return fmt.Errorf("load %s: %w", path, err)
	case memories > MaxMemories:
		return fmt.Errorf("load %s: it defines %d linear memories, and an instance may have %d (multi-memory modules are refused: each memory would need its own share of --max-memory)", path, memories, MaxMemories)
	case tables > MaxTables:
		return fmt.Errorf("load %s: it defines %d tables, and an instance may have at most %d", path, tables, MaxTables)
	}
	return nil
}
