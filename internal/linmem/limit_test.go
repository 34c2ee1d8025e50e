package linmem

import "testing"

// TestLimitAcrossMemories: an allocator's limit caps its memories
// together: the first takes what it may grow to, the next what is left,
// and a grow past that fails.
func TestLimitAcrossMemories(t *testing.T) {
	alloc, freeAll := Allocator(3 * wasmPage)
	defer freeAll()
	for _, tc := range []struct {
		max, grows, fails uint64
	}{
		{2 * wasmPage, 2 * wasmPage, 3 * wasmPage}, // its own maximum
		{4 * wasmPage, 1 * wasmPage, 2 * wasmPage}, // what the first left
		{4 * wasmPage, 0, 1 * wasmPage},            // nothing left
	} {
		mem := alloc.Allocate(0, tc.max)
		if buf := mem.Reallocate(tc.grows); uint64(len(buf)) != tc.grows || tc.grows > 0 && buf == nil {
			t.Errorf("max %d: grow to %d gave %d bytes", tc.max, tc.grows, len(buf))
		}
		if buf := mem.Reallocate(tc.fails); buf != nil {
			t.Errorf("max %d: grew to %d bytes, past the allocator's limit", tc.max, len(buf))
		}
	}
}
