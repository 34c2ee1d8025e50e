package wasihttp

// An Option changes how Serve and ServeContext serve.
type Option func(*config)

// config is what the Options of one Serve call chose.
type config struct {
	netHTTP bool
}

// WithNetHTTP serves every connection with net/http's own server
// (http.Server.Serve) instead of the HTTP/1.1 fast path. The answers are
// the same; the fast path costs a Go guest on wasm far fewer instructions
// per request (docs/BENCHMARKS.md). Use it to rule the fast path out when
// chasing a difference, or for a handler that depends on something the
// fast path does differently (see the package documentation).
func WithNetHTTP() Option {
	return func(c *config) { c.netHTTP = true }
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}
