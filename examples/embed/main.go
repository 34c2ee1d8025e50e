// Command embed serves a wasip1 guest from a Go program of its own, through
// wasiserve's library: a reload on SIGHUP, a drain on SIGINT or SIGTERM.
//
//	go run . app.wasm
package main

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine/builtin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := wasiserve.New(os.Args[1], wasiserve.Options{
		Engines: builtin.Engines(),
		Logger:  slog.Default(),
		OnReady: func(r wasiserve.Ready) { log.Print(r) },
	})
	if err != nil {
		log.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			srv.Reload()
		}
	}()
	if err := srv.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
