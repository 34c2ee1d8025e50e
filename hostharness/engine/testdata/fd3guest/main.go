// Command fd3guest is a wasip1 guest written without wasiserve's shim, the
// way many tutorials do it: it takes its listener as a bare fd 3. With
// EXIT_CODE set it exits at once with that code instead.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
)

func main() {
	if code := os.Getenv("EXIT_CODE"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Fprintln(os.Stderr, "fd3guest: exiting with", n)
		os.Exit(n)
	}
	syscall.SetNonblock(3, true)
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fd3guest:", err)
		os.Exit(1)
	}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fd3:")
		io.Copy(w, r.Body)
	}))
}
