package main_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine/builtin"
)

// A program outside the wasiserve module serves the echo guest on a port
// of its own, reads an answer, reloads the guest and drains it.
func Example() {
	guest := buildEcho()
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

	resp, err := http.Post((<-ready).URL, "text/plain", strings.NewReader("from outside"))
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	srv.Reload()
	for srv.Stats().ReloadsOK == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	fmt.Println(<-done)
	// Output:
	// from outside
	// <nil>
}

// buildEcho builds wasiserve's echo guest for wasip1 into a temporary
// directory, from the module this one requires.
func buildEcho() string {
	dir, err := os.MkdirTemp("", "embed-example")
	if err != nil {
		panic(err)
	}
	out := filepath.Join(dir, "echo.wasm")
	cmd := exec.Command("go", "build", "-o", out, "github.com/wasiserve/wasiserve/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build the echo guest: %v\n%s", err, msg))
	}
	return out
}
