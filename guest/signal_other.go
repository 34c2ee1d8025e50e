//go:build !wasip1

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// shutdownContext is cancelled by SIGINT or SIGTERM, to drain the server.
func shutdownContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
