// Command fd3guest is a wasip1 guest written without wasiserve's shim, the
// way many tutorials do it: it takes its listener as a bare fd 3. With
// EXIT_CODE set it exits at once with that code instead; with ALLOC_MB set
// it first allocates and touches that many MiB; with NO_ACCEPT set it tries
// one accept at once (none with NO_ACCEPT=never) and then never again, so
// connections pile up in the listener's backlog; with BLOCKING_ACCEPT=N it
// answers N connections with plain blocking accept, read and write calls
// on fd 3 (as guests without a netpoller do) and exits; BLOCKING_KEEPALIVE=N
// does the same with keep-alive, each connection answered until its
// client closes it. Responses start
// with REPLY_PREFIX ("fd3:" by default), which tells instances apart.
// A request for SPIN_PATH, when set, spins in pure computation forever, as
// a handler with a bug does.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if code := os.Getenv("EXIT_CODE"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Fprintln(os.Stderr, "fd3guest: exiting with", n)
		os.Exit(n)
	}
	if mb := os.Getenv("ALLOC_MB"); mb != "" {
		n, _ := strconv.Atoi(mb)
		hog := make([][]byte, n)
		for i := range hog {
			hog[i] = make([]byte, 1<<20)
			hog[i][0] = 1
		}
		fmt.Fprintln(os.Stderr, "fd3guest: allocated", len(hog), "MiB")
	}
	if os.Getenv("NO_ACCEPT") != "" {
		// One try, so that hosts that watch for the guest's first accept
		// see it waiting; then never again.
		// With NO_ACCEPT=never, not even that.
		if os.Getenv("NO_ACCEPT") != "never" {
			syscall.SetNonblock(3, true)
			syscall.Accept(3)
		}
		for { // short sleeps, so that the host can still interrupt the guest
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, blocking := range []struct {
		env    string
		answer func() error
	}{{"BLOCKING_KEEPALIVE", answerKeepAlive}, {"BLOCKING_ACCEPT", answerBlocking}} {
		if n := os.Getenv(blocking.env); n != "" {
			count, _ := strconv.Atoi(n)
			for range count {
				if err := blocking.answer(); err != nil {
					fmt.Fprintln(os.Stderr, "fd3guest:", err)
					os.Exit(1)
				}
			}
			return
		}
	}
	syscall.SetNonblock(3, true)
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fd3guest:", err)
		os.Exit(1)
	}
	prefix := os.Getenv("REPLY_PREFIX")
	if prefix == "" {
		prefix = "fd3:"
	}
	spinPath := os.Getenv("SPIN_PATH")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if spinPath != "" && r.URL.Path == spinPath {
			fmt.Fprintln(os.Stderr, "fd3guest: spinning")
			for i := 0; ; i++ {
				spinSink = i
			}
		}
		io.WriteString(w, prefix)
		io.Copy(w, r.Body)
	}))
}

// spinSink keeps the spin loop from being optimised away.
var spinSink int

// answerBlocking accepts one connection on fd 3, which it leaves blocking,
// reads a request's head and answers "blocked".
func answerBlocking() error {
	conn, _, err := syscall.Accept(3)
	if err != nil {
		return fmt.Errorf("blocking accept: %w", err)
	}
	defer syscall.Close(conn)
	var head []byte
	buf := make([]byte, 512)
	for !strings.Contains(string(head), "\r\n\r\n") {
		n, err := syscall.Read(conn, buf)
		if err != nil || n == 0 {
			return fmt.Errorf("blocking read: %d bytes, %v", n, err)
		}
		head = append(head, buf[:n]...)
	}
	_, err = syscall.Write(conn, []byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nblocked"))
	return err
}

// answerKeepAlive accepts one connection with blocking calls and answers
// each request on it until the client closes it (end of file).
func answerKeepAlive() error {
	conn, _, err := syscall.Accept(3)
	if err != nil {
		return fmt.Errorf("blocking accept: %w", err)
	}
	defer syscall.Close(conn)
	var head []byte
	buf := make([]byte, 512)
	for {
		n, err := syscall.Read(conn, buf)
		if err != nil {
			return fmt.Errorf("blocking read: %w", err)
		}
		if n == 0 {
			return nil
		}
		head = append(head, buf[:n]...)
		for {
			i := strings.Index(string(head), "\r\n\r\n")
			if i < 0 {
				break
			}
			head = head[i+4:]
			if _, err := syscall.Write(conn, []byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nblocked")); err != nil {
				return fmt.Errorf("blocking write: %w", err)
			}
		}
	}
}
