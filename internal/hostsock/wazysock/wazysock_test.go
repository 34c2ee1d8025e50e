package wazysock_test

import (
	"context"
	"testing"

	"github.com/samyfodil/wazy"

	"github.com/wasiserve/wasiserve/internal/hostsock/wazysock"
)

// TestInstantiate: every hostsock function matches wazero's signature of
// the same name (Export checks it) and the module instantiates.
func TestInstantiate(t *testing.T) {
	ctx := context.Background()
	rt := wazy.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := wazysock.Instantiate(ctx, rt)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	got := rt.Module("wasi_snapshot_preview1").ExportedFunctionDefinitions()
	for _, name := range []string{"sock_accept", "poll_oneoff", "path_open", "sock_open", "sock_getaddrinfo", "clock_time_get"} {
		if got[name] == nil {
			t.Errorf("no %s exported", name)
		}
	}
}
