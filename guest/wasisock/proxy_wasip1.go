//go:build wasip1

package wasisock

// hostTellsAddrs is true on WASI: Listen takes the addresses a host tells
// (see ProxyExport).
const hostTellsAddrs = true

// proxyV2 is the ProxyExport of every module that links this package: its
// presence among the module's exports announces that Listen reads the
// PROXY protocol v2 headers of EnvProxy. Nothing calls it.
//
//go:wasmexport wasiserve_proxy_v2
func proxyV2() {}
