// Command fatalguest is a wasip1 guest written the way many tutorials write
// a server: it prints a banner and a line per request on stdout, and serves
// with log.Fatal(http.Serve(ln, h)), so that a listener the host stopped
// makes it exit 1. GET /exit makes it exit with code 3 on its own.
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func main() {
	fmt.Println("fatalguest: a banner on stdout")
	ln, _, err := wasisock.Listen(wasisock.Config{Addr: "127.0.0.1:8080"})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("fatalguest:", r.Method, r.URL.Path)
		if r.URL.Path == "/exit" {
			os.Exit(3)
		}
		io.WriteString(w, "fatal:")
		io.Copy(w, r.Body)
	})))
}
