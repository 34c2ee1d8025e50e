// Command markedguest is the echo service with one difference a client
// can see: every response has the header "X-Guest: marked". Reload tests
// swap it with the plain echo guest under load. GET /trap makes it trap
// (the wasm unreachable instruction), for tests of --restart. Like the echo guest, it
// finishes its requests in flight once the host drains its listener.
package main

import (
	"log/slog"
	"net/http"
	"os"
	"runtime"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasihttp"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, info, err := wasisock.Listen(wasisock.Config{})
	if err != nil {
		logger.Error("markedguest", "err", err)
		os.Exit(1)
	}
	service := echo.NewHandler(info, logger)
	server := echo.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/trap" {
			runtime.Breakpoint() // unreachable, on wasm
		}
		w.Header().Set("X-Guest", "marked")
		service.ServeHTTP(w, r)
	}), echo.DefaultServerConfig())
	if err := wasihttp.Serve(server, ln); err != nil {
		logger.Error("markedguest", "err", err)
		os.Exit(1)
	}
}
