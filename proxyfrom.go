package wasiserve

import (
	"fmt"

	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// checkProxyFrom checks ProxyFrom's prefixes, and that the listener (the
// one given, or listen's) is TCP: the peers of a Unix socket have no IP
// address to trust. A socket from systemd is checked once it is open.
func (o Options) checkProxyFrom(listen listener.Spec) error {
	if len(o.ProxyFrom) == 0 {
		return nil
	}
	if err := (hostsock.ProxyFrom{Trusted: o.ProxyFrom}).Check(); err != nil {
		return &OptionError{Option: "ProxyFrom", Err: err}
	}
	switch {
	case o.Listener != nil && o.Listener.Addr().Network() != "tcp":
		return optionErr("ProxyFrom", fmt.Sprint(o.ProxyFrom), "needs a TCP listener, not %s %s", o.Listener.Addr().Network(), o.Listener.Addr())
	case o.Listener == nil && listen.Kind == listener.Unix:
		return optionErr("ProxyFrom", fmt.Sprint(o.ProxyFrom), "needs a TCP listener, not %s", listen)
	}
	return nil
}
