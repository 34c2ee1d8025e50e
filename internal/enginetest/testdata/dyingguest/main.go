// Command dyingguest is a wasip1 guest that dies the ways a Go server
// dies under load, each on request, with DYINGGUEST_PARKED goroutines
// (default 2000) parked so that the Go runtime's dump of them is long:
//
//	GET /healthz          answers "ok"
//	GET /flood?bytes=N    writes N bytes of log lines to stderr, then answers
//	GET /oom              allocates until the Go runtime fails with
//	                      "fatal error: out of memory", dumps every goroutine
//	                      and exits 2
//	GET /stuck            prints the runtime's fatal banner and then goroutine
//	                      dumps forever, never yielding: it serves nothing
//	                      more and never exits, as a runtime stuck printing
//	POST /note            logs the body (up to 1 KiB) to stderr as it came,
//	                      as a healthy server logs what clients send
//
// With DYINGGUEST_HEARTBEAT=D (a Go duration) it also logs a line to
// stderr every D, as healthy servers log on a timer.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// hoard keeps what /oom allocates reachable.
var hoard [][]byte

func main() {
	parked := 2000
	if n, err := strconv.Atoi(os.Getenv("DYINGGUEST_PARKED")); err == nil {
		parked = n
	}
	never := make(chan struct{})
	for i := range parked {
		go park(i, never)
	}
	if d, err := time.ParseDuration(os.Getenv("DYINGGUEST_HEARTBEAT")); err == nil && d > 0 {
		go func() {
			for range time.Tick(d) {
				log.Print("heartbeat")
			}
		}()
	}
	ln, _, err := wasisock.Listen(wasisock.Config{Addr: "127.0.0.1:8080"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /flood", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("bytes"))
		line := append(bytes.Repeat([]byte("x"), 1023), '\n')
		for written := 0; written < n; written += len(line) {
			os.Stderr.Write(line)
		}
		io.WriteString(w, "flooded")
	})
	mux.HandleFunc("POST /note", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
		log.Printf("note: %s", b)
		io.WriteString(w, "noted")
	})
	mux.HandleFunc("GET /oom", func(w http.ResponseWriter, r *http.Request) {
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1 // touched, so that the memory is really in use
			}
			hoard = append(hoard, b)
		}
	})
	mux.HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
		os.Stderr.Write([]byte("fatal error: out of memory\n\n"))
		// Preformatted: the loop allocates nothing, so that no collection
		// lets another goroutine run.
		dump := []byte(fmt.Sprintf("goroutine %d [chan receive]:\nmain.park(...)\n\t/src/dyingguest/main.go:80 +0x2\ncreated by main.main in goroutine 1\n\n", parked))
		for {
			os.Stderr.Write(dump)
		}
	})
	log.Fatal(http.Serve(ln, mux))
}

// park waits forever, a frame deep, as a handler blocked on a stream.
func park(i int, never <-chan struct{}) {
	select {
	case <-never:
		fmt.Println(i)
	}
}
