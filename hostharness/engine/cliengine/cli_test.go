package cliengine

import (
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

func TestCLIArguments(t *testing.T) {
	cfg := engine.Config{
		Dirs: []engine.Mount{{Host: "/srv", Guest: "/data"}},
		Env:  []string{"A=1"},
		Args: []string{"-v"},
	}
	for _, tc := range []struct {
		engine string
		want   string
	}{
		{"wasmtime-cli", "run -S preview2=n -S tcplisten=127.0.0.1:8080 --dir /srv::/data --env A=1 app.wasm -v"},
		{"wazero-cli", "run -listen 127.0.0.1:8080 -mount /srv:/data -env A=1 app.wasm -v"},
		{"wasmedge-cli", "--env LISTEN_ADDR=127.0.0.1:8080 --dir /data:/srv --env A=1 app.wasm -v"},
	} {
		if got := strings.Join(runtimes()[tc.engine].args("app.wasm", "127.0.0.1:8080", cfg), " "); got != tc.want {
			t.Errorf("%s arguments:\n got %s\nwant %s", tc.engine, got, tc.want)
		}
	}
}
