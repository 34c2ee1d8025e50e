// Command fleetload is the load client of scripts/fleet-test.sh: a bounded
// number of keep-alive HTTP connections, each sending GET requests one
// after another to a URL that answers with the echo guest's /listener
// report, until it is interrupted (SIGINT or SIGTERM) or its time is up.
// It then prints what it saw, one figure a line:
//
//	requests N        requests sent
//	failed N          transport errors and statuses other than 200
//	local ADDR N      answers per address the guests were reached at (local_addr:
//	                  behind a PROXY header, the balancer's front end)
//	remote ADDR N     answers per client address the guests saw (remote_addr's host)
//	error TEXT        up to five distinct failures, as samples
//
//	go run ./scripts/fleetload -url http://127.0.0.1:8080/listener -c 8 -max 2m
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"
)

// maxSamples bounds the distinct failure texts kept.
const maxSamples = 5

// report is the part of the echo guest's GET /listener answer used here.
type report struct {
	RemoteAddr string `json:"remote_addr"`
	LocalAddr  string `json:"local_addr"`
}

// tally is what the connections saw, shared under its mutex.
type tally struct {
	mu       sync.Mutex
	requests int
	failed   int
	local    map[string]int
	remote   map[string]int
	samples  []string
}

func (t *tally) fail(text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed++
	if len(t.samples) < maxSamples && !slices.Contains(t.samples, text) {
		t.samples = append(t.samples, text)
	}
}

func (t *tally) ok(r report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.local[r.LocalAddr]++
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	t.remote[host]++
}

func (t *tally) print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(w, "requests %d\nfailed %d\n", t.requests, t.failed)
	for _, k := range slices.Sorted(maps.Keys(t.local)) {
		fmt.Fprintf(w, "local %s %d\n", k, t.local[k])
	}
	for _, k := range slices.Sorted(maps.Keys(t.remote)) {
		fmt.Fprintf(w, "remote %s %d\n", k, t.remote[k])
	}
	for _, s := range t.samples {
		fmt.Fprintf(w, "error %s\n", s)
	}
}

// one sends one request and records its outcome.
func (t *tally) one(ctx context.Context, client *http.Client, url string) {
	t.mu.Lock()
	t.requests++
	t.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.fail(err.Error())
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			t.mu.Lock()
			t.requests-- // cut short by the end of the run, not by the server
			t.mu.Unlock()
			return
		}
		t.fail(err.Error())
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var r report
	switch {
	case err != nil:
		t.fail("reading the body: " + err.Error())
	case resp.StatusCode != http.StatusOK:
		t.fail(resp.Status)
	case json.Unmarshal(body, &r) != nil || r.LocalAddr == "":
		t.fail(fmt.Sprintf("not a /listener report: %.80q", body))
	default:
		t.ok(r)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("fleetload", flag.ContinueOnError)
	url := flags.String("url", "", "URL to GET, answering with the echo guest's /listener report")
	conns := flags.Int("c", 8, "connections, each sending one request at a time (1 to 256)")
	pause := flags.Duration("pause", 5*time.Millisecond, "pause of each connection between its requests")
	timeout := flags.Duration("timeout", 10*time.Second, "timeout of each request")
	maxRun := flags.Duration("max", 2*time.Minute, "longest run; SIGINT or SIGTERM ends it sooner")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *url == "" || *conns < 1 || *conns > 256 || *maxRun <= 0 || *timeout <= 0 || *pause < 0 {
		return errors.New("want -url, -c from 1 to 256, and positive -max and -timeout")
	}
	ctx, cancel := context.WithTimeout(ctx, *maxRun)
	defer cancel()
	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: *conns, DisableCompression: true},
	}
	t := &tally{local: map[string]int{}, remote: map[string]int{}}
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				t.one(ctx, client, *url)
				select {
				case <-ctx.Done():
				case <-time.After(*pause):
				}
			}
		})
	}
	wg.Wait()
	t.print(stdout)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		slog.Error("fleetload", "err", err)
		os.Exit(2)
	}
}
