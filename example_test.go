package wasiserve_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine/builtin"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// An embedder serves the echo guest on a listener of its own (port 0),
// reads a response and stops.
func Example() {
	guest, err := enginetest.Echo.Build() // GOOS=wasip1 GOARCH=wasm go build -o echo.wasm ./guest
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	ready := make(chan wasiserve.Ready, 1)
	srv, err := wasiserve.New(guest, wasiserve.Options{
		Engines:  builtin.Engines(),
		Listener: ln,
		OnReady:  func(r wasiserve.Ready) { ready <- r },
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	url := (<-ready).URL
	resp, err := http.Post(url, "text/plain", strings.NewReader("hello, wasm"))
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	stop() // drain: requests in flight finish, then Run returns
	fmt.Println(<-done)
	// Output:
	// hello, wasm
	// <nil>
}
