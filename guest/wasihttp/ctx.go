package wasihttp

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// requestContext is a request's context: cancelled when the handler
// returns, when the connection fails or its client goes away, as
// net/http's. net/http watches for the client's close with a goroutine
// that reads the connection once the body has been read, for every
// request; this context starts that read only when someone first waits
// on it (Done, or a context derived from it), so a request whose handler
// never asks costs no goroutine.
type requestContext struct {
	parent context.Context // values and deadline
	c      *conn

	mu     sync.Mutex
	done   chan struct{}
	err    error
	polled bool
	afters []*afterFunc
}

type afterFunc struct {
	f    func()
	done bool
}

func (x *requestContext) Deadline() (time.Time, bool) { return x.parent.Deadline() }

func (x *requestContext) Done() <-chan struct{} {
	x.mu.Lock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.err != nil {
			close(x.done)
		} else {
			defer x.c.watchClient()
		}
	}
	d := x.done
	x.mu.Unlock()
	return d
}

// Err also starts watching for the client's close: a handler that polls
// Err sees it as it would on net/http.
func (x *requestContext) Err() error {
	x.mu.Lock()
	err := x.err
	first := x.done == nil && !x.polled
	x.polled = true
	x.mu.Unlock()
	if first && err == nil {
		x.c.watchClient()
	}
	return err
}

func (x *requestContext) Value(key any) any {
	if key == http.LocalAddrContextKey {
		return x.c.laddr
	}
	return x.parent.Value(key)
}

// AfterFunc makes contexts derived from x (context.WithCancel and the
// like) wait on it without a goroutine of their own.
func (x *requestContext) AfterFunc(f func()) func() bool {
	a := &afterFunc{f: f}
	x.mu.Lock()
	cancelled := x.err != nil
	if cancelled {
		a.done = true
		go f()
	} else {
		x.afters = append(x.afters, a)
	}
	x.mu.Unlock()
	if !cancelled {
		x.c.watchClient()
	}
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		if a.done {
			return false
		}
		a.done = true
		return true
	}
}

// cancel ends x with context.Canceled; only the first call counts.
func (x *requestContext) cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return
	}
	x.err = context.Canceled
	if x.done != nil {
		close(x.done)
	}
	for _, a := range x.afters {
		if !a.done {
			a.done = true
			go a.f()
		}
	}
	x.afters = nil
}

// watched reports whether anyone waits on x.
func (x *requestContext) watched() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.done != nil || len(x.afters) > 0
}
