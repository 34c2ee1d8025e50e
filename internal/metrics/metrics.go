// Package metrics exposes a served group's counters in the Prometheus
// text format, on a registry of its own (no global state).
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wasiserve/wasiserve/hostharness/supervise"
)

// Build says what is served: it is the wasiserve_build_info metric.
type Build struct {
	// Engine is the engine's name.
	Engine string
	// Guest is the guest module's path, and SHA256 the hex SHA-256 of its
	// contents.
	Guest, SHA256 string
}

// Source is what the collector reads at each scrape.
type Source interface {
	// Stats returns the group's counters (supervise.Group.Stats).
	Stats() supervise.Stats
	// Build returns what is served now (it changes on a reload).
	Build() Build
}

// NewRegistry returns a registry with the collector of src, Go's runtime
// metrics and the process's (open file descriptors, CPU, memory).
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// desc is one metric the collector reports.
type desc struct {
	*prometheus.Desc
	kind prometheus.ValueType
}

func newDesc(name, help string, kind prometheus.ValueType, labels ...string) desc {
	return desc{prometheus.NewDesc("wasiserve_"+name, help, labels, nil), kind}
}

// collector turns a Source into metrics at each scrape.
type collector struct {
	src Source

	build, reloads, draining, instancesDraining desc
	// Per instance index.
	accepted, open, read, written, holds, denials, memory desc
	reclaimed                                             desc
	running, starts, exits, traps, restarts               desc
	outputDropped                                         desc
}

func newCollector(src Source) *collector {
	const c, g = prometheus.CounterValue, prometheus.GaugeValue
	return &collector{
		src:               src,
		build:             newDesc("build_info", "What is served: the engine and the guest module's path and SHA-256; always 1.", g, "engine", "guest", "guest_sha256"),
		reloads:           newDesc("reloads_total", "Reloads of the guest module (SIGHUP or --watch), by result.", c, "result"),
		draining:          newDesc("draining", "1 once the server drains for a stop, else 0.", g),
		instancesDraining: newDesc("instances_draining", "Guest instances draining now, for a stop or after a reload.", g),
		accepted:          newDesc("connections_accepted_total", "Connections the guest accepted.", c, "instance"),
		open:              newDesc("connections_open", "Accepted connections open now.", g, "instance"),
		read:              newDesc("socket_read_bytes_total", "Bytes the guest read from its sockets.", c, "instance"),
		written:           newDesc("socket_written_bytes_total", "Bytes the guest wrote to its sockets.", c, "instance"),
		holds:             newDesc("accept_holds_total", "Times the guest reached --max-conns, so that clients waited in the accept queue.", c, "instance"),
		reclaimed:         newDesc("connections_reclaimed_total", "Connections the host closed at --max-conns to admit waiting clients, by reason (idle, slow).", c, "instance", "reason"),
		denials:           newDesc("socket_denials_total", "Guest socket calls the --allow-dial/--allow-listen policy refused, by policy (dial, listen, lookup).", c, "instance", "policy"),
		memory:            newDesc("guest_memory_bytes", "Size of the guest's linear memory.", g, "instance"),
		running:           newDesc("instances_running", "Guest instances running at this index (2 while a reload hands over).", g, "instance"),
		starts:            newDesc("instance_starts_total", "Guest instances started.", c, "instance"),
		exits:             newDesc("instance_exits_total", "Guest instances that stopped by themselves (exit or trap).", c, "instance"),
		traps:             newDesc("instance_traps_total", "Guest instances that trapped.", c, "instance"),
		restarts:          newDesc("instance_restarts_total", "Restarts of a guest after it exited (--restart).", c, "instance"),
		outputDropped:     newDesc("guest_output_dropped_bytes_total", "Bytes of the guest's stdout and stderr dropped over its output rate.", c, "instance"),
	}
}

func (c *collector) descs() []desc {
	return []desc{c.build, c.reloads, c.draining, c.instancesDraining, c.accepted, c.open, c.read, c.written,
		c.holds, c.reclaimed, c.denials, c.memory, c.running, c.starts, c.exits, c.traps, c.restarts, c.outputDropped}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d.Desc
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	put := func(d desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d.Desc, d.kind, v, labels...)
	}
	b := c.src.Build()
	put(c.build, 1, b.Engine, b.Guest, b.SHA256)
	st := c.src.Stats()
	put(c.reloads, float64(st.ReloadsOK), "ok")
	put(c.reloads, float64(st.ReloadsFailed), "failed")
	put(c.draining, boolValue(st.Draining))
	put(c.instancesDraining, float64(st.InstancesDraining))
	for _, in := range st.Instances {
		i := strconv.Itoa(in.Index)
		s := in.Sockets
		put(c.accepted, float64(s.AcceptedConns), i)
		put(c.open, float64(s.OpenConns), i)
		put(c.read, float64(s.BytesRead), i)
		put(c.written, float64(s.BytesWritten), i)
		put(c.holds, float64(s.AcceptHolds), i)
		put(c.reclaimed, float64(s.ReclaimedIdle), i, "idle")
		put(c.reclaimed, float64(s.ReclaimedSlow), i, "slow")
		put(c.denials, float64(s.DialsDenied), i, "dial")
		put(c.denials, float64(s.ListensDenied), i, "listen")
		put(c.denials, float64(s.LookupsDenied), i, "lookup")
		put(c.memory, float64(s.MemoryBytes), i)
		put(c.running, float64(in.Running), i)
		put(c.starts, float64(in.Starts), i)
		put(c.exits, float64(in.Exits), i)
		put(c.traps, float64(in.Traps), i)
		put(c.restarts, float64(in.Restarts), i)
		put(c.outputDropped, float64(in.OutputDropped), i)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
