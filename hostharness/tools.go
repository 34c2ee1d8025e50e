//go:build !serveonly

package main

// toolCommands are the commands that measure guests; a build with the
// serveonly tag leaves them out.
func toolCommands() []command {
	return []command{
		{"compare", "check the wasm guest answers a request corpus like the native build", runCompare},
		{"bench", "measure the guest natively and under each engine, with ratios to native", runBench},
		{"soak", "run mixed echo load with client aborts; verify every echo and watch RSS and descriptors", runSoak},
	}
}
