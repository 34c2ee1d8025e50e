//go:build !linux

package hostsock

// proxyState is ProxyFrom's state, on Linux only.
type proxyState struct{}

func newProxyState(ProxyFrom, int) (*proxyState, error) { return nil, errUnsupported }

func (*proxyState) pollFD() int { return -1 }
func (*proxyState) close()      {}
func (*proxyState) accept(int, bool) (int, []byte, *connAddrs, Errno) {
	return -1, nil, nil, errnoNotsup
}
