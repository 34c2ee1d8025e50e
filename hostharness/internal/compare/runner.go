package compare

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Target is a server the corpus is sent to.
type Target struct {
	// Name labels the target's column, e.g. the engine name.
	Name string
	// Addr is the "host:port" to connect to.
	Addr string
	// Skip, when set, is why the target is not compared (e.g. its runtime
	// is not installed); every case then reports SKIP.
	Skip string
}

// Options tune Run.
type Options struct {
	// SkipLong leaves out the cases marked long (the 256 MiB stream).
	SkipLong bool
	// AllowKnown reports the corpus's known differences as SKIP(known)
	// instead of failures. Without it any difference fails.
	AllowKnown bool
	// Logger receives one progress line per compared result; nil discards
	// them.
	Logger *slog.Logger
}

// Run sends every case to ref and then to each target, and reports per
// case and target whether the target's normalised observation equals the
// reference's.
func Run(ctx context.Context, corpus *Corpus, ref Target, targets []Target, opts Options) *Report {
	cases := corpus.Cases
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rep := newReport(ref, targets)
	for i := range cases {
		c := &cases[i]
		if c.Long && opts.SkipLong {
			for _, t := range targets {
				rep.add(Result{Case: c.Name, Target: t.Name, Status: Skip, Reason: "long: case left out by --skip-long"})
			}
			continue
		}
		var want Observation
		var wantErr string
		for _, t := range targets {
			if ctx.Err() != nil {
				rep.add(Result{Case: c.Name, Target: t.Name, Status: Fail, Reason: "interrupted: " + context.Cause(ctx).Error()})
				continue
			}
			if t.Skip != "" {
				rep.add(Result{Case: c.Name, Target: t.Name, Status: Skip, Reason: t.Skip})
				continue
			}
			if want.empty() && wantErr == "" {
				want = observe(ctx, c, ref.Addr)
				if want.empty() {
					wantErr = "the reference gave no response (errors: " + join(want.Errors) + ")"
				}
			}
			res := Result{Case: c.Name, Target: t.Name}
			start := time.Now()
			got := observe(ctx, c, t.Addr)
			res.Took = Duration(time.Since(start).Round(time.Millisecond))
			switch diff := cmp.Diff(want, got, cmpOptions); {
			case wantErr != "":
				res.Status, res.Reason = Fail, wantErr
			case diff != "":
				res.Status, res.Reason, res.Diff = Fail, "differs from "+ref.Name, diff
			default:
				res.Status = Pass
			}
			if k := corpus.known(t.Name, c.Name); res.Diff != "" && k != nil {
				res.Reason = "known: " + k.Reason
				if opts.AllowKnown {
					res.Status = Skip
				}
			}
			logger.Info("compared", "case", c.Name, "target", t.Name, "status", res.Status, "took", time.Duration(res.Took))
			rep.add(res)
		}
	}
	return rep
}

// observe runs c against addr and normalises what it saw.
func observe(ctx context.Context, c *Case, addr string) Observation {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var obs Observation
	if c.Kind == KindRaw {
		obs = runRaw(ctx, c, addr)
	} else {
		obs = runHTTP(ctx, c, addr)
	}
	normalise(&obs)
	return obs
}

// empty reports an observation without any response.
func (o Observation) empty() bool {
	return len(o.Responses) == 0 && (o.Healthz == nil || o.Healthz.Status == 0)
}

// known returns the known difference covering case name on target, if any.
func (c *Corpus) known(target, name string) *Known {
	for i := range c.Known {
		if c.Known[i].matches(target, name) {
			return &c.Known[i]
		}
	}
	return nil
}
