//go:build !linux

package hostsock

import "net/netip"

func openSocket(int, int) (int, Errno)                   { return -1, errnoNotsup }
func bindSocket(int, int, netip.AddrPort) Errno          { return errnoNotsup }
func listenSocket(int, int32) Errno                      { return errnoNotsup }
func connectSocket(int, int, bool, netip.AddrPort) Errno { return errnoNotsup }
func socketAddr(int, bool) (netip.AddrPort, Errno)       { return netip.AddrPort{}, errnoNotsup }
func getOption(int, uint32) (int32, Errno)               { return 0, errnoNotsup }
func setOption(int, uint32, int32) Errno                 { return errnoNotsup }
func recvFrom(int, [][]byte, int) (int, netip.AddrPort, Errno) {
	return 0, netip.AddrPort{}, errnoNotsup
}
func sendTo(int, int, [][]byte, netip.AddrPort) (int, Errno) { return 0, errnoNotsup }
