package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultProbeTimeout is probe's --timeout.
const defaultProbeTimeout = 2 * time.Second

// probeBodyLimit bounds what probe reads of an answer: the reason it
// quotes of a failure.
const probeBodyLimit = 512

// runProbe is "hostharness probe": one HTTP GET of a URL, for a health
// check where there is no shell and no curl (a FROM scratch image). It
// exits 0 on a 2xx answer and 1 on anything else (another status, a
// refused connection, the timeout), with one line on stderr; 2 for bad
// arguments.
func runProbe(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "probe", "usage: hostharness probe [--timeout D] URL\n\n"+
		"GETs URL once (http or https) and exits 0 if the answer is 2xx, 1 otherwise with one line on\n"+
		"stderr: a health check that needs no shell, as Docker's HEALTHCHECK runs it:\n"+
		`  HEALTHCHECK CMD ["/hostharness", "probe", "http://127.0.0.1:9090/readyz"]`+"\n"+
		"Redirects are not followed and proxy settings are ignored.")
	timeout := flags.Duration("timeout", defaultProbeTimeout, "give up after this long (connecting, sending and reading the answer)")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(env.stderr, "hostharness probe: want one URL (see hostharness probe -h)")
		return 2
	}
	target := flags.Arg(0)
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(env.stderr, "hostharness probe: %q: want an http:// or https:// URL\n", target)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(env.stderr, "hostharness probe: --timeout %v: want a duration above 0\n", *timeout)
		return 2
	}
	if err := probe(ctx, target, *timeout); err != nil {
		fmt.Fprintln(env.stderr, "hostharness probe:", err)
		return 1
	}
	return 0
}

// probe GETs target once within timeout: nil for a 2xx answer, otherwise
// an error of one line, quoting the start of the answer's body.
func probe(ctx context.Context, target string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{
		// Not http.DefaultTransport: no proxy from the environment, no
		// connection kept after the one request.
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "hostharness-probe")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: no answer within %v", target, timeout)
		}
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, probeBodyLimit))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("GET %s: %s, and its body not within %v", target, resp.Status, timeout)
	}
	line := strings.Join(strings.Fields(string(body)), " ")
	if line == "" {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return fmt.Errorf("GET %s: %s: %s", target, resp.Status, line)
}

// unwrapURLError is err in one line: "GET URL: cause" for a *url.Error
// (its own text quotes the URL).
func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return fmt.Errorf("GET %s: %w", u.URL, u.Err)
	}
	return err
}
