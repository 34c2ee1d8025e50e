// Package scripts_test checks the shipping scripts and the Dockerfile: every
// scripts/*.sh answers --help, docker-smoke.sh skips clearly without Docker,
// and the files scripts/build.sh produces for each image target serve echo
// when run the way the image's ENTRYPOINT runs them (the stand-in for
// `docker run`, since no Docker engine runs in CI).
package scripts_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runScript runs a script with bash from dir and returns its combined
// output and exit code.
func runScript(t *testing.T, dir string, env []string, script string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	path, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{path}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
		return "", -1
	}
}

func TestScriptsHelp(t *testing.T) {
	scripts, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"build.sh", "run.sh", "test.sh", "docker-smoke.sh", "docker-build.sh", "fleet-test.sh"} {
		if !slices.Contains(scripts, want) {
			t.Errorf("scripts/%s is missing", want)
		}
	}
	for _, script := range scripts {
		t.Run(script, func(t *testing.T) {
			src, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(src, []byte("#!/usr/bin/env bash\n")) || !bytes.Contains(src, []byte("\nset -euo pipefail\n")) {
				t.Errorf("%s: want a bash shebang and 'set -euo pipefail'", script)
			}
			// --help exits early; bash -n parses the whole script.
			if out, err := exec.CommandContext(t.Context(), "bash", "-n", script).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", script, err, out)
			}
			// From another directory: scripts must not depend on the caller's.
			out, code := runScript(t, t.TempDir(), nil, script, "--help")
			if code != 0 || !strings.HasPrefix(out, "usage: scripts/"+script) {
				t.Errorf("%s --help: exit %d, want 0 and usage text; output:\n%s", script, code, out)
			}
		})
	}
}

func TestDockerScriptsWithoutDocker(t *testing.T) {
	tests := []struct {
		script string
		args   []string
		code   int
	}{
		{"docker-smoke.sh", nil, 0},
		{"docker-smoke.sh", []string{"--strict"}, 3},
		{"fleet-test.sh", nil, 0},
		{"fleet-test.sh", []string{"--strict"}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.script, tt.args), func(t *testing.T) {
			out, code := runScript(t, t.TempDir(), []string{"DOCKER=wasiserve-no-such-docker"}, tt.script, tt.args...)
			if code != tt.code || !strings.HasPrefix(out, "SKIP: no 'wasiserve-no-such-docker' CLI") {
				t.Errorf("exit %d, want %d with a SKIP message; output:\n%s", code, tt.code, out)
			}
		})
	}
}

// stage is one final stage of the Dockerfile.
type stage struct {
	name        string
	user        string
	entrypoint  []string
	cmd         []string
	runs        []string // build.sh commands that made the files it copies from /out
	healthcheck []string // HEALTHCHECK's CMD
	labels      []string // LABEL keys
}

var jsonInstr = regexp.MustCompile(`^(ENTRYPOINT|CMD)\s+(\[.*\])\s*$`)

// parseDockerfile returns the stages with an ENTRYPOINT, keyed by name;
// the last (default) stage is also keyed "". It knows the Dockerfile's own
// subset: one instruction per line except RUN continuations.
func parseDockerfile(t *testing.T, path string) map[string]*stage {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "\\\n", " ")
	stages := map[string]*stage{}
	builds := map[string][]string{} // stage name -> build.sh commands, inherited through FROM
	var cur *stage
	var last *stage
	for line := range strings.SplitSeq(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "FROM":
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--") }) // --platform=
			cur = &stage{}
			if base := stages[fields[1]]; base != nil && fields[1] != "" {
				*cur = *base // FROM an earlier final stage: the same image
			}
			cur.name = ""
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				cur.name = fields[3]
				builds[cur.name] = slices.Clone(builds[fields[1]])
			}
			stages[cur.name] = cur
			last = cur
		case "RUN":
			if i := strings.Index(line, "scripts/build.sh"); i >= 0 && cur != nil {
				builds[cur.name] = append(builds[cur.name], strings.TrimSpace(line[i:]))
			}
		case "COPY":
			// Files from a build.sh output dir come from the stage's last build.sh run.
			from, ok := strings.CutPrefix(fields[1], "--from=")
			if b := builds[from]; ok && strings.HasPrefix(fields[len(fields)-2], "/out/") && len(b) > 0 {
				if run := b[len(b)-1]; !slices.Contains(cur.runs, run) {
					cur.runs = append(cur.runs, run)
				}
			}
		case "USER":
			cur.user = fields[1]
		case "LABEL":
			for _, f := range fields[1:] {
				if k, _, ok := strings.Cut(f, "="); ok {
					cur.labels = append(cur.labels, k)
				}
			}
		case "HEALTHCHECK":
			_, hc, ok := strings.Cut(line, " CMD ")
			if err := json.Unmarshal([]byte(hc), &cur.healthcheck); !ok || err != nil {
				t.Fatalf("Dockerfile: HEALTHCHECK must use the JSON (exec) form: %s", line)
			}
		case "ENTRYPOINT", "CMD":
			m := jsonInstr.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("Dockerfile: %s must use the JSON (exec) form: %s", fields[0], line)
			}
			var args []string
			if err := json.Unmarshal([]byte(m[2]), &args); err != nil {
				t.Fatalf("Dockerfile: %s: %v", line, err)
			}
			if fields[0] == "CMD" {
				cur.cmd = args
			} else {
				cur.entrypoint = args
			}
		}
	}
	if last == nil {
		t.Fatal("Dockerfile has no FROM")
	}
	stages[""] = last
	return stages
}

// imageCommand maps an image's command onto a directory standing in for the
// image's root: absolute paths move under root, the listener moves from
// 0.0.0.0:8080 (checked) to 127.0.0.1:0 and the admin listener from
// 0.0.0.0:9090 (checked) to admin.
func imageCommand(t *testing.T, command []string, root, admin string) []string {
	t.Helper()
	var out []string
	sawListen, sawAdmin := false, false
	for _, arg := range command {
		if v, ok := strings.CutPrefix(arg, "--listen="); ok {
			if v != "0.0.0.0:8080" {
				t.Errorf("image listens on %q, want 0.0.0.0:8080 (reachable through docker run -p)", v)
			}
			out = append(out, "--listen=127.0.0.1:0")
			sawListen = true
			continue
		}
		if v, ok := strings.CutPrefix(arg, "--admin="); ok {
			if v != "0.0.0.0:9090" {
				t.Errorf("image's admin listener is %q, want 0.0.0.0:9090 (the HEALTHCHECK's, and reachable by a balancer)", v)
			}
			out = append(out, "--admin="+admin)
			sawAdmin = true
			continue
		}
		flag, path, isFlag := strings.Cut(arg, "=")
		switch {
		case isFlag && strings.HasPrefix(path, "/"):
			arg = flag + "=" + filepath.Join(root, path)
		case strings.HasPrefix(arg, "/"):
			arg = filepath.Join(root, arg)
		}
		out = append(out, arg)
	}
	if !sawListen || !sawAdmin {
		t.Errorf("image command %q lacks --listen= or --admin=", command)
	}
	return out
}

func TestImageContents(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the images' files with scripts/build.sh (the full suite runs it)")
	}
	stages := parseDockerfile(t, "../Dockerfile")
	tests := []struct {
		target string   // Dockerfile target; "" is the default
		args   []string // docker run arguments replacing CMD; nil keeps it
		mode   string   // scripts/build.sh mode that builds its files
		engine string
		static bool
	}{
		{"", nil, "image", "wazy", true},
		{"", []string{"--engine=wazy-sock", "/echo.wasm"}, "image", "wazy-sock", true},
		{"wasmtime", nil, "image-wasmtime", "wasmtime", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("target=%s/args=%q", cmp.Or(tt.target, "default"), tt.args), func(t *testing.T) {
			st := stages[tt.target]
			if st == nil {
				t.Fatalf("Dockerfile has no stage %q", tt.target)
			}
			if want := []string{"scripts/build.sh --out /out " + tt.mode}; !slices.Equal(st.runs, want) {
				t.Errorf("stage %q is built by %q, want %q", tt.target, st.runs, want)
			}
			if st.user == "" || strings.HasPrefix(st.user, "0") || strings.HasPrefix(st.user, "root") {
				t.Errorf("stage %q runs as user %q, want a non-root user", tt.target, st.user)
			}
			args := st.cmd
			if tt.args != nil {
				args = tt.args
			}
			command := append(slices.Clone(st.entrypoint), args...)
			if !slices.Contains(command, "--engine="+tt.engine) {
				t.Errorf("stage %q command %q, want --engine=%s", tt.target, command, tt.engine)
			}
			if !tt.static {
				if _, err := exec.LookPath("gcc"); err != nil {
					t.Skip("the wasmtime target needs gcc for cgo, which is not on PATH")
				}
			}

			root := t.TempDir()
			if out, code := runScript(t, root, nil, "build.sh", "--out", root, tt.mode); code != 0 {
				t.Fatalf("build.sh %s: exit %d\n%s", tt.mode, code, out)
			}
			checkBinary(t, filepath.Join(root, "hostharness"), tt.static)
			checkWasm(t, filepath.Join(root, "echo.wasm"))
			// The image's /cache: empty, created by the build stage.
			if err := os.Mkdir(filepath.Join(root, "cache"), 0o755); err != nil {
				t.Fatal(err)
			}
			// The HEALTHCHECK: the image's own binary probing /readyz on
			// the admin listener, run while the image's command serves.
			hc := st.healthcheck
			if len(hc) != 4 || hc[0] != st.entrypoint[0] || hc[1] != "probe" || hc[3] != "http://127.0.0.1:9090/readyz" {
				t.Fatalf("stage %q HEALTHCHECK %q, want %s probe --timeout=D http://127.0.0.1:9090/readyz", tt.target, hc, st.entrypoint[0])
			}
			for _, l := range []string{"title", "description", "source", "licenses", "version", "revision"} {
				if !slices.Contains(st.labels, "org.opencontainers.image."+l) {
					t.Errorf("stage %q has no LABEL org.opencontainers.image.%s", tt.target, l)
				}
			}
			admin := freeAddr(t)
			probe := []string{filepath.Join(root, hc[0]), hc[1], hc[2], "http://" + admin + "/readyz"}
			serveEcho(t, imageCommand(t, command, root, admin), tt.engine, func() {
				out, err := exec.CommandContext(t.Context(), probe[0], probe[1:]...).CombinedOutput()
				if err != nil {
					t.Errorf("the HEALTHCHECK %q of a serving image: %v\n%s", probe, err, out)
				}
			})
		})
	}
}

// libsOnDistrolessCC are the shared libraries gcr.io/distroless/cc-debian12
// provides (glibc and libgcc).
var libsOnDistrolessCC = []string{
	"ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "libgcc_s.so.1",
}

// checkBinary checks that path is a linux/amd64 ELF executable that is
// static (no program interpreter, no shared libraries) when static is set,
// and otherwise needs only libraries the wasmtime target's base has.
func checkBinary(t *testing.T, path string, static bool) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("hostharness: %v", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC || f.Machine != elf.EM_X86_64 {
		t.Errorf("%s: ELF type %v machine %v, want an x86-64 executable", path, f.Type, f.Machine)
	}
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, _ := io.ReadAll(p.Open())
			interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if static {
		if interp != "" || len(libs) > 0 {
			t.Errorf("%s is not static: interpreter %q, libraries %q", path, interp, libs)
		}
		return
	}
	for _, lib := range libs {
		if !slices.Contains(libsOnDistrolessCC, lib) {
			t.Errorf("%s needs %s, which distroless/cc does not have (it has %q)", path, lib, libsOnDistrolessCC)
		}
	}
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// checkWasm checks that path is a WebAssembly binary module.
func checkWasm(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm\x01\x00\x00\x00")) {
		t.Errorf("%s is not a WebAssembly module (starts %q)", path, b[:min(8, len(b))])
	}
}

// serving is hostharness serve's stdout line once the listener is bound.
var serving = regexp.MustCompile(`^serving \S+ at (http://127\.0\.0\.1:\d+) \(engine (\S+)\)$`)

// serveEcho runs command in an environment like the image's (no HOME, no
// go on PATH, no usable temp dir), POSTs "echo" to it, and stops it with
// SIGTERM as docker stop does, expecting a clean exit.
func serveEcho(t *testing.T, command []string, engine string, whileServing func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = []string{"PATH=" + t.TempDir(), "TMPDIR=/nonexistent"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%q stderr:\n%s", command, stderr.String())
		}
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := serving.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		t.Fatalf("first stdout line %q (%v), want %q", line, err, serving)
	}
	if m[2] != engine {
		t.Errorf("served by engine %s, want %s", m[2], engine)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(m[1], "text/plain", strings.NewReader("echo"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "echo" {
		t.Errorf("POST %s: status %d body %q err %v, want 200 \"echo\"", m[1], resp.StatusCode, body, err)
	}
	whileServing()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	waited = true
	if err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
}
