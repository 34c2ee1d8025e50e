// Command dirguest serves the files of the preopened directory /data on
// the listener the wasiserve shim finds, proving that directories stay
// visible to the guest beside a preopened socket. With WRITE_PROBE=NAME
// it first tries to create /data/NAME and reports the outcome on stderr.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func main() {
	ln, info, err := wasisock.Listen(wasisock.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dirguest:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "dirguest: listener fd %d (%s)\n", info.FD, info.Source)
	if name := os.Getenv("WRITE_PROBE"); name != "" {
		fmt.Fprintf(os.Stderr, "dirguest: write probe: %v\n", os.WriteFile("/data/"+name, []byte("probe"), 0o644))
	}
	http.Serve(ln, http.FileServer(http.Dir("/data")))
}
