//go:build !linux

package linmem

import "math"

// AddressSpaceLeft is how many more bytes of address space the process
// may map; here it cannot tell, and answers math.MaxUint64.
func AddressSpaceLeft() uint64 { return math.MaxUint64 }

// addressSpaceLimit is the address space limit: none known here.
func addressSpaceLimit() uint64 { return math.MaxUint64 }
