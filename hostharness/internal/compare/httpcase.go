package compare

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// runHTTP sends an http case through net/http's client on fresh
// connections to addr.
func runHTTP(ctx context.Context, c *Case, addr string) Observation {
	var protocols http.Protocols
	if c.H2C {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	transport := &http.Transport{
		Protocols:             &protocols,
		ExpectContinueTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   atLeastOne(c.Parallel),
		DisableCompression:    true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	n := atLeastOne(c.Parallel)
	results := make([]struct {
		resp   Response
		err    string
		got100 bool
	}, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &results[i]
			resp, got100, err := doHTTP(ctx, client, c, addr)
			r.got100 = got100
			if err != nil {
				r.err = errClass(err)
				return
			}
			r.resp = readResponse(resp, nil)
		})
	}
	wg.Wait()
	var obs Observation
	for _, r := range results {
		if r.err != "" {
			obs.Errors = append(obs.Errors, r.err)
			continue
		}
		obs.Responses = append(obs.Responses, r.resp)
		obs.Got100Continue = obs.Got100Continue || r.got100
	}
	return obs
}

// doHTTP sends one request of c and returns the response with its body
// unread, and whether a 100 Continue came first.
func doHTTP(ctx context.Context, client *http.Client, c *Case, addr string) (*http.Response, bool, error) {
	var body io.Reader
	if c.Body != nil {
		body = c.Body.Reader()
		if c.Chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
	}
	var got100 bool
	trace := &httptrace.ClientTrace{Got100Continue: func() { got100 = true }}
	ctx = httptrace.WithClientTrace(ctx, trace)
	req, err := http.NewRequestWithContext(ctx, c.Method, "http://"+addr+c.Path, body)
	if err != nil {
		return nil, false, fmt.Errorf("request %s %s: %w", c.Method, c.Path, err)
	}
	if c.Body != nil && !c.Chunked {
		req.ContentLength = c.Body.Len()
		if req.ContentLength == 0 {
			req.Body = http.NoBody
		}
	}
	for k, vs := range c.Header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	if c.ExpectContinue {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := client.Do(req)
	return resp, got100, err
}
