// Package bench measures the echo guest served natively and under
// WebAssembly engines, each target in its own process, with a closed-loop
// HTTP load from this process on 127.0.0.1. On a shared machine absolute
// figures drift from run to run, so every figure is also reported as a
// ratio to a reference target (the native guest with GOMAXPROCS=1)
// measured in the same run.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"
)

// Config describes a bench run.
type Config struct {
	// Targets are measured in order; the first is the reference.
	Targets []Target
	// Mixes are the request mixes; nil means Mixes().
	Mixes []Mix
	// Duration is how long each mix (and the wrk cross-check) runs.
	Duration time.Duration
	// Conns is the number of concurrent connections of the load.
	Conns int
	// IdleWindow is how long idle CPU is measured; IdleConns keep-alive
	// connections are open meanwhile.
	IdleWindow time.Duration
	IdleConns  int
	// StartTimeout bounds each launch, cold compilation included.
	StartTimeout time.Duration
	// Wrk is the path of wrk for the cross-check; empty skips it, with
	// WrkNote saying why in the report.
	Wrk, WrkNote string
	// WorkDir holds the compilation caches of launches and wrk's script.
	WorkDir string
	// Command is recorded in the report.
	Command string
	// Logger reports progress; nil discards it.
	Logger *slog.Logger
}

// DefaultIdleWindow is the idle window for a run whose mixes last d: a
// quarter of d, at least 1 s and at most 10 s (reached at d = 40 s).
func DefaultIdleWindow(d time.Duration) time.Duration {
	return min(10*time.Second, max(time.Second, d/4))
}

// Run measures every target of cfg and returns the report with ratios
// filled in.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if errUnsupported != nil {
		return nil, errUnsupported
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("bench: no targets")
	}
	if cfg.Duration <= 0 || cfg.Conns <= 0 || cfg.IdleWindow <= 0 || cfg.IdleConns < 0 {
		return nil, fmt.Errorf("bench: duration, conns and idle window must be positive (have %v, %d, %v)",
			cfg.Duration, cfg.Conns, cfg.IdleWindow)
	}
	if cfg.Mixes == nil {
		cfg.Mixes = Mixes()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Report{
		Machine: machine(),
		Command: cfg.Command,
		Note: fmt.Sprintf("Load generator, servers and wrk all run on this machine's %d CPUs, unpinned, "+
			"and other work on the machine adds noise: compare ratios within one run.", runtime.NumCPU()),
		Duration:   cfg.Duration.String(),
		Conns:      cfg.Conns,
		IdleWindow: cfg.IdleWindow.String(),
		IdleConns:  cfg.IdleConns,
		WrkNote:    cfg.WrkNote,
	}
	if cfg.Wrk != "" && time.Duration(wrkSeconds(cfg.Duration))*time.Second != cfg.Duration {
		r.WrkNote = fmt.Sprintf("wrk ran for %ds per target (its -d takes whole seconds).", wrkSeconds(cfg.Duration))
	}
	for _, t := range cfg.Targets {
		res, err := measure(ctx, cfg, t)
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", t.Name, err)
		}
		r.Targets = append(r.Targets, res)
	}
	r.fillRatios()
	return r, nil
}

// measure launches t cold, then warm, and measures the warm process.
func measure(ctx context.Context, cfg Config, t Target) (TargetResult, error) {
	log := cfg.Logger.With("target", t.Name)
	res := TargetResult{Name: t.Name, Engine: t.Engine}
	var err error
	if res.BinaryBytes, err = fileSize(t.Binary); err != nil {
		return res, err
	}
	if t.Wasm != "" {
		if res.WasmBytes, err = fileSize(t.Wasm); err != nil {
			return res, err
		}
	}
	cacheDir, err := os.MkdirTemp(cfg.WorkDir, "cache-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(cacheDir)

	log.Info("cold start")
	p, err := launch(ctx, t, cacheDir, cfg.StartTimeout)
	if err != nil {
		return res, err
	}
	res.ColdStartMS = ms(p.Start)
	if err := p.Stop(); err != nil {
		return res, fmt.Errorf("cold start: %w", err)
	}
	log.Info("warm start", "cold_start", p.Start.Round(time.Millisecond))
	p, err = launch(ctx, t, cacheDir, cfg.StartTimeout)
	if err != nil {
		return res, err
	}
	defer p.Stop()
	res.WarmStartMS = ms(p.Start)

	log.Info("idle", "warm_start", p.Start.Round(time.Millisecond), "listening_after", p.Listening.Round(time.Millisecond), "window", cfg.IdleWindow, "conns", cfg.IdleConns)
	if res.IdleCPUSeconds, err = idleCPU(ctx, p, cfg.IdleConns, cfg.IdleWindow); err != nil {
		return res, err
	}
	for _, mix := range cfg.Mixes {
		log.Info("load", "mix", mix.Name, "conns", cfg.Conns, "duration", cfg.Duration)
		m, err := loadMix(ctx, p, mix, cfg.Conns, cfg.Duration)
		if err != nil {
			return res, err
		}
		res.Mixes = append(res.Mixes, m)
		if mix.Name == SmallEcho.Name {
			if res.RSSAfterSmallEchoBytes, err = settledRSS(ctx, p); err != nil {
				return res, err
			}
		}
	}
	if cfg.Wrk != "" {
		log.Info("wrk cross-check", "mix", SmallEcho.Name)
		if res.WrkRequestsPerSec, res.WrkErrors, err = runWrk(ctx, cfg.Wrk, cfg.WorkDir, p.Addr, cfg.Conns, cfg.Duration); err != nil {
			return res, err
		}
	}
	u, err := p.Usage()
	if err != nil {
		return res, err
	}
	res.PeakRSSBytes = u.PeakRSS
	if err := p.Stop(); err != nil {
		return res, err
	}
	return res, ctx.Err()
}

// settledRSS is p's resident memory a second after a load: what it keeps
// while serving, not what the load's last moments held.
func settledRSS(ctx context.Context, p *process) (int64, error) {
	if err := sleep(ctx, time.Second); err != nil {
		return 0, err
	}
	rss, _, err := treeFootprint(p.Pid())
	return rss, err
}

// idleCPU measures the CPU time p uses over window while n idle
// keep-alive connections are open to it.
func idleCPU(ctx context.Context, p *process, n int, window time.Duration) (float64, error) {
	conns, err := openIdle(p.Addr, n)
	if err != nil {
		return 0, err
	}
	defer conns.Close()
	// Let the server settle after the connections' first requests.
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return 0, err
	}
	u0, err := p.Usage()
	if err != nil {
		return 0, err
	}
	if err := sleep(ctx, window); err != nil {
		return 0, err
	}
	u1, err := p.Usage()
	if err != nil {
		return 0, err
	}
	return (u1.CPU - u0.CPU).Seconds(), conns.Check()
}

// loadMix runs one closed-loop mix against p and measures p's CPU meanwhile.
func loadMix(ctx context.Context, p *process, mix Mix, conns int, d time.Duration) (MixResult, error) {
	u0, err := p.Usage()
	if err != nil {
		return MixResult{}, err
	}
	l := runLoad(ctx, p.Addr, mix, conns, d)
	u1, err := p.Usage()
	if err != nil {
		return MixResult{}, err
	}
	m := MixResult{
		Mix:        mix.Name,
		Requests:   l.Requests,
		Errors:     l.Errors,
		FirstError: l.FirstError,
	}
	if l.Requests > 0 {
		m.RequestsPerSec = float64(l.Requests) / l.Elapsed.Seconds()
		m.CPUSecondsPer10k = (u1.CPU - u0.CPU).Seconds() / float64(l.Requests) * 1e4
		us := func(v int64) float64 { return float64(v) / 1e3 }
		m.P50MS = us(l.Latency.ValueAtQuantile(50))
		m.P90MS = us(l.Latency.ValueAtQuantile(90))
		m.P99MS = us(l.Latency.ValueAtQuantile(99))
		m.MaxMS = us(l.Latency.Max())
	}
	return m, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	return st.Size(), nil
}

// machine describes the host the bench runs on.
func machine() Machine {
	return Machine{
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		CPUs:      runtime.NumCPU(),
		CPUModel:  cpuModel(),
		Kernel:    kernelRelease(),
		GoVersion: runtime.Version(),
	}
}
