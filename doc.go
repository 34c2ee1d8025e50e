// Package wasiserve serves a WebAssembly guest, a Go net/http service
// built with GOOS=wasip1 GOARCH=wasm, as a long-running server: it binds
// (or takes) the listening socket, compiles the guest through a cache,
// runs instances of it on that socket under one of the engines of package
// engine, restarts them, reloads the guest without refusing a connection,
// reports readiness and counters, and drains on a stop.
//
//	err := wasiserve.Serve(ctx, "app.wasm", wasiserve.Options{
//		Engines: builtin.Engines(),
//		Listen:  listen, // from listener.Parse("127.0.0.1:8080")
//	})
//
// Serve returns once ctx is done and the guests have drained (nil), or
// when they cannot run. A Server (New, then Run) also reloads on request
// and reports its counters. The command hostharness serve is this package
// behind flags.
//
// The guest finds its socket with package guest/wasisock and serves it
// with package guest/wasihttp; see the README.
package wasiserve
