//go:build wasip1

package main

import "context"

// shutdownContext is never cancelled on wasip1: WASI delivers no signals,
// and a goroutine waiting in os/signal stalls the single-threaded
// scheduler so that accepted connections are never served.
func shutdownContext() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
