package enginekit

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/wasiserve/wasiserve/guest/wasisock"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// contractVars are the variables of the address contract between a host
// that owns the accepts and the guest shim (package wasisock): only the
// host sets them, so that they always say what it does.
var contractVars = []string{wasisock.EnvProxy, wasisock.EnvListenAddr}

// GuestEnv is the guest's environment: cfg.Env without the contract's
// variables, which the operator cannot set, then told, those the engine
// sets (TellAddrs).
func GuestEnv(cfg engine.Config, told []string) []string {
	env := slices.DeleteFunc(slices.Clone(cfg.Env), func(kv string) bool {
		key, _, _ := strings.Cut(kv, "=")
		return slices.Contains(contractVars, key)
	})
	return append(env, told...)
}

// TellAddrs gives a guest that announced it reads PROXY protocol v2
// headers (announces: it exports wasisock.ProxyExport) its addresses:
// table prefixes each connection accepted on ln with a header, and the
// returned variables, for the guest's environment (GuestEnv), say so and
// name ln's address. A guest that did not announce it is left as it is:
// it must never see bytes it did not ask for.
func TellAddrs(announces bool, table *hostsock.Table, ln net.Listener) (told []string) {
	if !announces {
		return nil
	}
	table.SendProxyHeaders()
	told = []string{wasisock.EnvProxy + "=" + wasisock.ProxyV2}
	if addr := listenAddrValue(ln.Addr()); addr != "" {
		told = append(told, wasisock.EnvListenAddr+"="+addr)
	}
	return told
}

// listenAddrValue is addr in the syntax of wasisock.EnvListenAddr, or ""
// for an address that has none.
func listenAddrValue(addr net.Addr) string {
	switch addr := addr.(type) {
	case *net.TCPAddr:
		// Unmapped, as package net prints an IPv4 address held in 16 bytes.
		if ap := addr.AddrPort(); ap.IsValid() {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		}
	case *net.UnixAddr:
		if addr.Name != "" {
			return "unix:" + addr.Name
		}
	}
	return ""
}

// ExportsProxy reports whether a module's exported function names include
// wasisock.ProxyExport.
func ExportsProxy[V any](exports map[string]V) bool {
	_, ok := exports[wasisock.ProxyExport]
	return ok
}
