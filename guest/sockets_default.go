//go:build !wasmedge

package main

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// listen finds or opens the service's listener (see wasisock.Listen).
func listen(cfg wasisock.Config) (net.Listener, wasisock.Info, error) {
	return wasisock.Listen(cfg)
}

// routes is the echo service as it is: the default build makes no
// outbound connection, and imports nothing but WASI preview 1, so that
// every runtime can run it.
func routes(echoService http.Handler, _ *slog.Logger) http.Handler {
	return echoService
}
