//go:build linux

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// httpUpstream is an HTTP (or HTTPS) server on 127.0.0.1 that records,
// for each value of the "client" query parameter, the connections its
// requests came on, and whether a request to /slow saw its client go away.
type httpUpstream struct {
	addr string // 127.0.0.1:PORT
	srv  *http.Server

	mu        sync.Mutex
	conns     map[string]map[string]bool // client -> remote addresses
	cancelled int                        // /slow requests whose context ended first
}

// upstreamBody is what the upstream answers on /hello.
const upstreamBody = "hello from the upstream\n"

// slowFor is how long /slow waits before it answers, unless its client
// goes away first.
const slowFor = 20 * time.Second

// startHTTP serves an httpUpstream until the test ends, over TLS with
// cert when it is given.
func startHTTP(t testing.TB, cert *tls.Certificate) *httpUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &httpUpstream{addr: ln.Addr().String(), conns: map[string]map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		io.WriteString(w, upstreamBody)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			u.mu.Lock()
			u.cancelled++
			u.mu.Unlock()
		case <-time.After(slowFor):
			io.WriteString(w, "slow\n")
		}
	})
	u.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if cert != nil {
			u.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
			u.srv.ServeTLS(ln, "", "")
		} else {
			u.srv.Serve(ln)
		}
	}()
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func (u *httpUpstream) record(r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := r.URL.Query().Get("client")
	if u.conns[c] == nil {
		u.conns[c] = map[string]bool{}
	}
	u.conns[c][r.RemoteAddr] = true
}

// connsOf returns how many connections client's requests came on.
func (u *httpUpstream) connsOf(client string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns[client])
}

// cancelledSlow returns how many /slow requests saw their client go.
func (u *httpUpstream) cancelledSlow() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cancelled
}

// testCA is a certificate authority made for one test run and a server
// certificate it signed for localhost, 127.0.0.1 and ::1.
type testCA struct {
	// dir holds ca.pem, the CA certificate, to give the guest as
	// SSL_CERT_FILE.
	dir    string
	server tls.Certificate
}

// newTestCA makes a testCA in a temporary directory.
func newTestCA(t testing.TB) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wasiserve e2e test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: t.TempDir(), server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(filepath.Join(ca.dir, "ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// echoUpstream is a TCP server that echoes what it reads until EOF, then
// closes, on addr.
type echoUpstream struct{ addr string }

// startEcho serves an echoUpstream on network ("tcp4" or "tcp6")
// loopback until the test ends; ok is false when that loopback is
// missing.
func startEcho(t testing.TB, network string) (*echoUpstream, bool) {
	t.Helper()
	host := "127.0.0.1"
	if network == "tcp6" {
		host = "[::1]"
	}
	ln, err := net.Listen(network, host+":0")
	if err != nil {
		return nil, false
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				io.Copy(c, c)
			}()
		}
	}()
	return &echoUpstream{addr: ln.Addr().String()}, true
}

// requireUpstreams is the variable that makes a missing upstream a
// failure instead of a skip; .ci/run sets it, having installed them.
const requireUpstreams = "WASISERVE_REQUIRE_UPSTREAMS"

// missing skips the test for want of an upstream, saying what is
// missing, or fails it where requireUpstreams is set.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(requireUpstreams) != "" {
		t.Fatalf("%s (%s is set: the upstreams must be installed)", what, requireUpstreams)
	}
	t.Skip("SKIP: " + what)
}

// postgres is a throwaway PostgreSQL cluster on 127.0.0.1.
type postgres struct {
	port     int
	user     string
	password string
	database string
}

// url is the cluster's connection string (no TLS: it listens on
// loopback only).
func (p *postgres) url() string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", p.user, p.password, p.port, p.database)
}

// pgBinDir finds the directory of initdb and postgres: on PATH, or
// Debian's /usr/lib/postgresql/VERSION/bin (not on PATH), the newest.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres are not installed (Debian: apt-get install postgresql)")
}

// pgVersion is the major version in a /usr/lib/postgresql/VERSION/bin path.
func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// startPostgres makes a cluster in a temporary directory (initdb, with a
// password for TCP clients), starts it on a free 127.0.0.1 port, creates
// the database, and stops and removes it when the test ends. initdb and
// postgres refuse to run as root: run as root (as CI does), they run as
// the unprivileged user "postgres" that Debian's package creates.
func startPostgres(t testing.TB) *postgres {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		missing(t, "PostgreSQL: "+err.Error())
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "PostgreSQL: running as root, and there is no user postgres to run initdb as: "+err.Error())
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are root's 0700 directories, which the
	// postgres user cannot enter.
	dir, err := os.MkdirTemp("", "wasiserve-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &postgres{port: freePort(t), user: "wasiserve", password: "e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36), database: "e2e"}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if cred != nil {
		for _, path := range []string{dir, pwfile} {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	asUser := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	initdb := asUser("initdb", "-D", data, "-U", p.user, "--pwfile", pwfile, "--auth-local=trust",
		"--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	logs := runDaemon(t, asUser("postgres", "-D", data, "-p", strconv.Itoa(p.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off", "-c", "max_connections=50"), syscall.SIGINT) // SIGINT: fast shutdown
	ctx := context.Background()
	admin := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", p.user, p.password, p.port)
	var conn *pgx.Conn
	if !waitFor(ctx, time.Minute, func() bool { conn, err = pgx.Connect(ctx, admin); return err == nil }) {
		t.Fatalf("postgres does not answer on 127.0.0.1:%d: %v\n%s", p.port, err, logs)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+p.database); err != nil {
		t.Fatal(err)
	}
	return p
}

// daemonStopTimeout bounds an upstream server's stop before it is killed.
const daemonStopTimeout = 30 * time.Second

// runDaemon starts an upstream server, its output into the returned
// buffer, and stops it with stop (then SIGKILL, after daemonStopTimeout)
// when the test ends.
func runDaemon(t testing.TB, cmd *exec.Cmd, stop os.Signal) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(stop)
		select {
		case <-exited:
		case <-time.After(daemonStopTimeout):
			cmd.Process.Kill()
			<-exited
		}
	})
	return logs
}

// redisServer is a redis-server on 127.0.0.1 with a password.
type redisServer struct {
	addr     string
	password string
}

// url is its go-redis URL.
func (r *redisServer) url() string { return fmt.Sprintf("redis://:%s@%s/0", r.password, r.addr) }

// startRedis starts redis-server on a free 127.0.0.1 port, with no
// persistence, until the test ends.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "Redis: redis-server is not installed (Debian: apt-get install redis-server)")
	}
	r := &redisServer{addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), password: "e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	_, port, _ := net.SplitHostPort(r.addr)
	logs := runDaemon(t, exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--requirepass", r.password,
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--protected-mode", "yes"), syscall.SIGTERM)
	c := redis.NewClient(&redis.Options{Addr: r.addr, Password: r.password})
	defer c.Close()
	ctx := context.Background()
	if !waitFor(ctx, 30*time.Second, func() bool { err = c.Ping(ctx).Err(); return err == nil }) {
		t.Fatalf("redis-server does not answer on %s: %v\n%s", r.addr, err, logs)
	}
	return r
}
