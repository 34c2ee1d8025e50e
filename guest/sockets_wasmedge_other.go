//go:build wasmedge && !wasip1

package main

import (
	"net"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// listen is wasisock.Listen: natively it already listens on cfg.Addr
// (LISTEN_ADDR or -listen).
func listen(cfg wasisock.Config) (net.Listener, wasisock.Info, error) {
	return wasisock.Listen(cfg)
}

// dialContext connects with package net.
var dialContext = (&net.Dialer{}).DialContext
