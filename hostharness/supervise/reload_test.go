package supervise_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/supervise"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// notes records a Notifier's calls.
type notes struct {
	mu    sync.Mutex
	calls []string
}

func (n *notes) Reloading() { n.add("reloading") }
func (n *notes) Ready()     { n.add("ready") }
func (n *notes) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, s)
}

// TestReloadNotifiesAndCounts reloads a group twice, once with a loader
// that fails: the notifier hears RELOADING then READY around each, and
// the reload counters count each result.
func TestReloadNotifiesAndCounts(t *testing.T) {
	eng, err := enginetest.NewEngine(t, wazy.Name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mod, err := eng.Load(ctx, enginetest.Echo.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	ln, err := enginetest.Listen(t, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n notes
	ready := make(chan struct{})
	g := &supervise.Group{Module: mod, Config: engine.Config{Listener: ln}, DrainTimeout: 5 * time.Second,
		Notifier: &n, Ready: func() { close(ready) }}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx) }()
	<-ready
	old, err := g.Reload(func() (engine.Module, error) { return eng.Load(ctx, enginetest.Echo.Path(t)) })
	if err != nil || old != mod {
		t.Fatalf("reload: old %v, err %v; want the first module back", old, err)
	}
	if _, err := g.Reload(func() (engine.Module, error) { return nil, errors.New("no such guest") }); err == nil || !strings.Contains(err.Error(), "the old guest keeps serving: no such guest") {
		t.Errorf("failed reload: %v", err)
	}
	st := g.Stats()
	if st.ReloadsOK != 1 || st.ReloadsFailed != 1 || len(st.Instances) != 1 || st.Instances[0].Starts != 2 || st.Instances[0].Running != 1 {
		t.Errorf("stats %+v, want 1 reload ok, 1 failed, 2 starts, 1 running", st)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if got := strings.Join(n.calls, ","); got != "reloading,ready,reloading,ready" {
		t.Errorf("notifier heard %s", got)
	}
}
