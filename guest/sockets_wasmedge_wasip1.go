//go:build wasmedge && wasip1

package main

import (
	"fmt"
	"net"
	"os"

	"github.com/stealthrocket/net/wasip1"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// listen binds cfg.Addr itself, with the WasmEdge socket extensions, when
// LISTEN_ADDR is set; otherwise it takes the preopened listener as the
// default build does.
func listen(cfg wasisock.Config) (net.Listener, wasisock.Info, error) {
	if os.Getenv("LISTEN_ADDR") == "" {
		return wasisock.Listen(cfg)
	}
	ln, err := wasip1.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, wasisock.Info{}, fmt.Errorf("listen on LISTEN_ADDR %s with the WasmEdge socket extensions: %w", cfg.Addr, err)
	}
	return ln, wasisock.Info{Source: wasisock.SourceAddress, FD: -1, Addr: ln.Addr().String()}, nil
}

// dialContext connects with the WasmEdge socket extensions.
var dialContext = wasip1.DialContext
