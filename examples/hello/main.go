// Command hello is the README's "build and serve a guest yourself"
// snippet as a program: a net/http service that takes its listener from
// wasisock.Listen and serves it with wasihttp.Serve, so that a host's
// drain or reload loses no request. It answers every request with its
// body (and "hello" for an empty one).
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm ./examples/hello
//	hostharness serve hello.wasm
package main

import (
	"io"
	"log"
	"net/http"

	"github.com/wasiserve/wasiserve/guest/wasihttp"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// maxBody bounds the body a request may send.
const maxBody = 1 << 20

// handler answers with the request's body, or "hello".
var handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if len(body) == 0 {
		body = []byte("hello\n")
	}
	w.Write(body)
})

func main() {
	ln, info, err := wasisock.Listen(wasisock.Config{Addr: "127.0.0.1:8080"}) // Addr is used by native builds only
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving on fd %d (%s)", info.FD, info.Source)
	if err := wasihttp.Serve(&http.Server{Handler: handler}, ln); err != nil {
		log.Fatal(err)
	}
}
