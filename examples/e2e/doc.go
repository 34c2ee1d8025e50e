// Package e2e holds the end-to-end tests and benchmarks of the example
// guests that call out (examples/callout, examples/pgcache) and of the
// README's serving snippet (examples/hello). They drive the commands, not
// Go APIs: each guest is built for wasip1 and natively, hostharness is
// built and run as `hostharness serve` in a subprocess, and every
// upstream (an HTTP and an HTTPS server, a TCP echo server, a throwaway
// PostgreSQL cluster, a redis-server) is started by the test on 127.0.0.1
// and stopped after it.
//
//	go test ./examples/e2e                        # the tests (skipped by -short)
//	go test ./examples/e2e -run '^$' -bench .     # the benchmarks (docs/BENCHMARKS.md)
//
// PostgreSQL and Redis come from Debian's packages postgresql and
// redis-server (.ci/run installs them); where they are missing, the tests
// that need them skip and say so.
package e2e
