//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Shape of the reload test's load: keep-alive connections, each sending
// one request after the other, and how long the load runs between two
// reloads.
const (
	reloadConns   = 16
	reloads       = 5
	loadPerReload = time.Second
	reloadTimeout = 90 * time.Second
)

// keepAliveLoad is reloadConns workers, each on its own keep-alive
// connection, sending PUTs with random bodies that must come back whole.
type keepAliveLoad struct {
	client       *http.Client
	url          string
	ok, failed   atomic.Int64
	mu           sync.Mutex
	errs         []string
	stop         chan struct{}
	wg           sync.WaitGroup
	maxBodyBytes int
}

func startKeepAliveLoad(url string) *keepAliveLoad {
	l := &keepAliveLoad{url: url, stop: make(chan struct{}), maxBodyBytes: 4 << 10,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: reloadConns, MaxConnsPerHost: reloadConns}}}
	for range reloadConns {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one()
			}
		})
	}
	return l
}

// one sends one request. PUT, not POST: a server that drains closes its
// idle keep-alive connections, and a client whose request crossed that
// close retries it only when it is idempotent (RFC 9110 9.2.2), as Go's
// Transport does.
func (l *keepAliveLoad) one() {
	body := make([]byte, 1+int(randByte())*l.maxBodyBytes/256)
	rand.Read(body)
	req, _ := http.NewRequest(http.MethodPut, l.url, bytes.NewReader(body))
	resp, err := l.client.Do(req)
	if err != nil {
		l.fail(err.Error())
		return
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		l.fail(fmt.Sprintf("%s, read error %v, body of %d bytes for %d sent", resp.Status, err, len(got), len(body)))
		return
	}
	l.ok.Add(1)
}

func (l *keepAliveLoad) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+msg)
	}
}

func (l *keepAliveLoad) finish() {
	close(l.stop)
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

func randByte() byte {
	var b [1]byte
	rand.Read(b[:])
	return b[0]
}

// TestHelloReloadUnderLoad serves the README snippet's guest
// (examples/hello: wasisock.Listen and wasihttp.Serve) on each engine and
// reloads it 5 times with SIGHUP while 16 keep-alive connections keep
// requests going: not one may fail or come back wrong.
func TestHelloReloadUnderLoad(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			s := serve(t, engine, "--drain-timeout", "10s", bins.helloWasm)
			load := startKeepAliveLoad(s.base + "/")
			for i := 1; i <= reloads; i++ {
				time.Sleep(loadPerReload)
				before := strings.Count(s.logs.String(), "msg=reloaded")
				s.cmd.Process.Signal(syscall.SIGHUP)
				if !waitFor(t.Context(), reloadTimeout, func() bool { return strings.Count(s.logs.String(), "msg=reloaded") > before }) {
					load.finish()
					t.Fatalf("reload %d: no reloaded line within %s; stderr:\n%s", i, reloadTimeout, s.logs)
				}
			}
			time.Sleep(loadPerReload)
			load.finish()
			t.Logf("%d reloads under %d keep-alive connections: %d requests answered, %d failed", reloads, reloadConns, load.ok.Load(), load.failed.Load())
			if load.failed.Load() != 0 {
				t.Errorf("%d requests failed:\n%s", load.failed.Load(), strings.Join(load.errs, "\n"))
			}
			if load.ok.Load() < 100 {
				t.Errorf("only %d requests answered: the load did not run", load.ok.Load())
			}
			if n := strings.Count(s.logs.String(), "msg=reloaded"); n != reloads {
				t.Errorf("%d reloads logged, want %d", n, reloads)
			}
		})
	}
}
