//go:build !(linux && (amd64 || arm64))

package linmem

import "github.com/samyfodil/wazy/api"

const supported = false

func allocate(capacity, max uint64) api.LinearMemory {
	return newHeapMemory(capacity, max)
}
