package enginekit

import (
	"fmt"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// trustProxyFrom makes table take PROXY protocol headers from
// cfg.ProxyFrom's peers, on cfg's listener, which must then be TCP: the
// peers of other sockets have no IP address to trust.
func trustProxyFrom(table *hostsock.Table, cfg engine.Config) error {
	if len(cfg.ProxyFrom) == 0 {
		return nil
	}
	if network := cfg.Listener.Addr().Network(); network != "tcp" {
		return fmt.Errorf("PROXY protocol from %v: needs a TCP listener, not %s %s", cfg.ProxyFrom, network, cfg.Listener.Addr())
	}
	return table.TrustProxyFrom(hostsock.ProxyFrom{Trusted: cfg.ProxyFrom, Logger: cfg.Log()})
}
