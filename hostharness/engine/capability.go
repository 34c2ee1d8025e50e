package engine

import "slices"

// Capability is one thing an engine can do beyond running a guest.
type Capability string

// The capabilities an engine may have.
const (
	// HostListener: the host owns the listener and every accepted
	// connection. The engine serves a listener it is lent (a Unix socket,
	// a socket from systemd, one listener shared by several instances and
	// kept across restarts and reloads, so that clients queue instead of
	// being refused), and guests may use it blocking or non-blocking.
	HostListener Capability = "a host-owned listener"
	// Drain: Run acts on Config.Drain (a graceful stop).
	Drain Capability = "graceful drain"
	// ReadyReport: Run tells when the guest first waits for a connection.
	ReadyReport Capability = "readiness at the first accept"
	// ConnLimit: Run honours Config.MaxConns.
	ConnLimit Capability = "a connection limit"
	// SocketExtensions: the WasmEdge socket extensions, under
	// Config.AllowDial and Config.AllowListen.
	SocketExtensions Capability = "the WasmEdge socket extensions"
	// ReadOnlyDirs: Mount.ReadOnly, confined against symlinks.
	ReadOnlyDirs Capability = "read-only directories"
	// ProxyProtocol: Config.ProxyFrom, PROXY protocol headers read by the
	// host from trusted peers.
	ProxyProtocol Capability = "PROXY protocol from trusted peers"
)

// Capabilities is the set of an engine's capabilities.
type Capabilities []Capability

// Has reports whether c includes capability.
func (c Capabilities) Has(capability Capability) bool { return slices.Contains(c, capability) }

// HostSocketCapabilities are those of the engines whose host owns the
// sockets (the project's socket layer): all of them.
var HostSocketCapabilities = Capabilities{HostListener, Drain, ReadyReport, ConnLimit, SocketExtensions, ReadOnlyDirs, ProxyProtocol}

// Need is a capability that a setting needs of an engine.
type Need struct {
	Capability Capability
	// Setting names what needs it: a Config field ("MaxConns"), or the
	// caller's own name for one of its settings.
	Setting string
}

// Needs lists the capabilities cfg needs of an engine.
func (cfg Config) Needs() []Need {
	var need []Need
	if cfg.Listener != nil && cfg.Listener.Addr().Network() != "tcp" {
		need = append(need, Need{HostListener, "Listener"})
	}
	if cfg.MaxConns > 0 {
		need = append(need, Need{ConnLimit, "MaxConns"})
	}
	if len(cfg.AllowDial) > 0 {
		need = append(need, Need{SocketExtensions, "AllowDial"})
	}
	if len(cfg.AllowListen) > 0 {
		need = append(need, Need{SocketExtensions, "AllowListen"})
	}
	if len(cfg.ProxyFrom) > 0 {
		need = append(need, Need{ProxyProtocol, "ProxyFrom"})
	}
	for _, d := range cfg.Dirs {
		if d.ReadOnly {
			need = append(need, Need{ReadOnlyDirs, "Dirs"})
			break
		}
	}
	return need
}

// Missing returns the first of needs that have lacks, if any.
func (have Capabilities) Missing(needs []Need) (Need, bool) {
	for _, n := range needs {
		if !have.Has(n.Capability) {
			return n, true
		}
	}
	return Need{}, false
}
