// Package interrupt runs slow steps (building or compiling a guest) so
// that a stop asked for meanwhile ends the wait at once.
package interrupt

import (
	"context"
	"fmt"
	"time"
)

// Error reports a stop asked for (ctx done) while a step was under way.
type Error struct {
	// During names the step ("loading the guest").
	During string
	// After is how long it had run.
	After time.Duration
	// Cause is ctx's cause.
	Cause error
}

func (e *Error) Error() string {
	return fmt.Sprintf("interrupted while %s (after %s: %v)", e.During, e.After.Round(time.Millisecond), e.Cause)
}

// Run runs f in a goroutine of its own and returns its result, or, when
// ctx is done first, an *Error saying that it was interrupted while doing
// what during names. f then runs on, abandoned (the process exits soon),
// and release (when not nil) gets its result if it had no error. An error
// of f after ctx was done (a killed go build) is an *Error too.
func Run[T any](ctx context.Context, during string, f func() (T, error), release func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() != nil {
			return r.v, &Error{during, time.Since(start), context.Cause(ctx)}
		}
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil && release != nil {
				release(r.v)
			}
		}()
		var zero T
		return zero, &Error{during, time.Since(start), context.Cause(ctx)}
	}
}
