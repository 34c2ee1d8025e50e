package wasisock_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// A guest gets its listener the same way on WASI and natively. Here, built
// natively with no inherited socket, it binds the address it is given; under
// a WASI host it would find the preopened socket instead.
func ExampleListen() {
	ln, info, err := wasisock.Listen(wasisock.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	fmt.Println("listener from:", info.Source)
	server := &http.Server{Handler: http.NotFoundHandler()}
	go server.Serve(ln)
	defer server.Close()
	// Output: listener from: address
}
