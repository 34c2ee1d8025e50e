package compare

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net"
)

// Normalisation is one legitimate difference between the native reference
// and a wasm target that the comparison removes before diffing.
type Normalisation struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
	apply  func(*Response)
}

// byDesign replaces values that differ between builds by design.
const byDesign = "<differs by design>"

// Normalisations lists every normalisation applied, in order; reports
// print them so that nothing is hidden.
func Normalisations() []Normalisation {
	return []Normalisation{
		{
			Name:   "Date header removed",
			Reason: "the wall-clock time at which the response was written",
			apply:  func(r *Response) { r.Header.Del("Date") },
		},
		{
			Name: "GET /listener: listener.fd, listener.source, listener.addr, goos, goarch, the ports of remote_addr and local_addr, and Content-Length masked",
			Reason: "the report says how the process got its socket: natively it binds an address itself (fd -1, source address, " +
				"addr set, linux), under WASI the host preopens it (fd 3, source scan, addr told only by the engines whose host owns the accepts, wasip1); " +
				"each target listens on a port of its own and each connection comes from another; the body length follows",
			apply: maskListenerReport,
		},
	}
}

// normalise applies every normalisation to obs in place.
func normalise(obs *Observation) {
	for _, n := range Normalisations() {
		for i := range obs.Responses {
			n.apply(&obs.Responses[i])
		}
		if obs.Healthz != nil {
			n.apply(obs.Healthz)
		}
	}
}

// maskListenerReport masks the by-design fields of an echo.Report body.
func maskListenerReport(r *Response) {
	if r.Header == nil || r.BodyLen > smallBody {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return
	}
	var report map[string]any
	if json.Unmarshal([]byte(r.Body), &report) != nil {
		return
	}
	listener, ok := report["listener"].(map[string]any)
	if !ok || report["goos"] == nil {
		return
	}
	for _, k := range []string{"fd", "source", "addr"} {
		listener[k] = byDesign
	}
	report["goos"], report["goarch"] = byDesign, byDesign
	for _, k := range []string{"remote_addr", "local_addr"} {
		if addr, ok := report[k].(string); ok {
			report[k] = maskPort(addr)
		}
	}
	body, err := json.Marshal(report)
	if err != nil {
		return
	}
	sum := sha256.Sum256(body)
	r.Body, r.BodyLen, r.BodySHA256 = string(body), int64(len(body)), Digest(hex.EncodeToString(sum[:]))
	if r.Header.Get("Content-Length") != "" {
		r.Header.Set("Content-Length", byDesign)
	}
}

// maskPort masks the port of a "host:port" address, keeping the host, so
// that a guest that sees the wrong client or server address still differs.
func maskPort(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, byDesign)
}
