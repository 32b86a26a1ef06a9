package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is the outcome of verify: every node's checks and facts, the
// architecture checks, the generations and the chosen one.
type Report struct {
	Nodes        []NodeResult // like Options.Nodes
	Architecture []CheckResult
	Generations  *GenerationSummary
	Chosen       *Generation // nil when none was requested or found
}

// probeTries is how many times round 2 looks for the other probes, one
// second apart: NFS caches attributes (acregmin/acdirmin default 3 s and
// 30 s) and negative lookups.
const probeTries = 5

// Verify connects to every node, gathers its facts in one round trip
// (which also writes its probe file), checks on every node that the other
// probes are visible (second round trip), removes the probes (third),
// evaluates every check, and closes the connections. A node's failure is a
// result, not an error; the error is only ctx's, and comes with the report
// of what was gathered before ctx ended.
func Verify(ctx context.Context, opts Options) (*Report, error) {
	return verify(ctx, opts, defaultRoots, probeTries)
}

func verify(ctx context.Context, opts Options, roots scriptRoots, tries int) (*Report, error) {
	f, _ := connect(ctx, opts, false)
	defer f.Close()
	return f.verify(ctx, roots, tries)
}

// Verify runs verify's phases on the fleet's open connections and leaves
// them open, so that a restore reuses them. Options.Generation and RunID are
// the fleet's. Each call starts from the connect results again.
func (f *Fleet) Verify(ctx context.Context) (*Report, error) {
	return f.verify(ctx, defaultRoots, probeTries)
}

func (f *Fleet) verify(ctx context.Context, roots scriptRoots, tries int) (*Report, error) {
	opts := f.opts
	obs := opts.observer()
	f.results = make([]NodeResult, len(f.base))
	for i, r := range f.base {
		r.Checks = slices.Clone(r.Checks)
		f.results[i] = r
	}
	start := time.Now()
	gatherFacts(ctx, f, roots, opts.RunID)
	factsTook := time.Since(start)

	// Round 2: every node looks for the others' probes. It starts only
	// once every probe is written, which the end of round 1 guarantees.
	var probed []string
	for i, r := range f.results {
		if f.conns[i] != nil && r.Facts != nil && r.Facts.ProbeUID >= 0 {
			probed = append(probed, r.Node.Name)
		}
	}
	forEach(ctx, len(f.results), opts.Parallel, func(ctx context.Context, i int) {
		r := &f.results[i]
		if f.conns[i] == nil || r.Facts == nil || !r.Facts.Complete {
			return
		}
		var others []string
		for _, n := range probed {
			if n != r.Node.Name {
				others = append(others, n)
			}
		}
		times := protectionSeconds(r.Facts)
		if len(others) == 0 && len(times) == 0 {
			return
		}
		obs.NodeEvent(r.Node.Name, "shared", "looking for the other nodes' probes")
		var out strings.Builder
		ctx, cancel := context.WithTimeoutCause(ctx, opts.roundTimeout(), fmt.Errorf("look for probes: no answer within %v: %w", opts.roundTimeout(), ErrTimeout))
		defer cancel()
		err := f.conns[i].Run(ctx, posixSh(sharedScript(roots, opts.RunID, others, times, tries)), nil, &out, nil)
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		applyShared(r.Facts, []byte(out.String()), err)
	})
	// Round 3: only now may each node remove its probe.
	forEach(ctx, len(f.results), opts.Parallel, func(ctx context.Context, i int) {
		r := &f.results[i]
		if f.conns[i] == nil || r.Facts == nil || r.Facts.ProbeUID < 0 {
			return
		}
		var out strings.Builder
		ctx, cancel := context.WithTimeoutCause(ctx, opts.roundTimeout(), fmt.Errorf("remove probe: no answer within %v: %w", opts.roundTimeout(), ErrTimeout))
		defer cancel()
		err := f.conns[i].Run(ctx, posixSh(removeProbeScript(roots, opts.RunID, r.Node.Name)), nil, &out, nil)
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		recs, perr := ParseRecords([]byte(out.String()))
		for _, rec := range recs {
			switch rec.Key {
			case "removed":
				r.Facts.ProbeRemoved = true
			case "rmerr":
				r.Facts.ProbeRmErr = strings.TrimSpace(string(rec.Value))
				if r.Facts.ProbeRmErr == "" {
					r.Facts.ProbeRmErr = "the probe is still there"
				}
			}
		}
		if !r.Facts.ProbeRemoved && r.Facts.ProbeRmErr == "" {
			r.Facts.ProbeRmErr = errText(errors.Join(err, perr))
		}
	})
	// When ctx ends early the report is still built from what was
	// gathered (the spec writes a report even for an interrupted run).
	var ctxErr error
	if ctx.Err() != nil {
		ctxErr = fmt.Errorf("verify: %w", context.Cause(ctx))
	}

	rep := &Report{Nodes: f.results}
	rep.Generations = summarize(f.results)
	gen := resolveGeneration(opts.Generation, rep.Generations)
	rep.Chosen = gen.Chosen
	arch := opts.arch()
	perNode := factsTook / time.Duration(max(1, len(f.results)))
	for i := range rep.Nodes {
		r := &rep.Nodes[i]
		// ssh.privilege of a connected node is judged on the facts' uid
		// (unless Connect already ran id -u).
		if r.DialErr == nil && !slices.ContainsFunc(r.Checks, func(c CheckResult) bool { return c.ID == CheckSSHPrivilege }) {
			res := checkSSHPrivilege(r)
			r.Checks = append(r.Checks, res)
			obs.Check(res)
		}
		n := len(r.Checks)
		runNodeChecks(arch, rep.Nodes, i, gen, obs)
		for j := n; j < len(r.Checks); j++ {
			// Checks are evaluated on facts gathered in one round trip:
			// the time spent is the round trip's, shared among them.
			r.Checks[j].Duration = perNode / time.Duration(len(factsChecks))
		}
	}
	var ips []string
	for _, n := range opts.Nodes {
		ips = append(ips, n.IP.String())
	}
	if opts.Inventory != nil {
		ips = ips[:0]
		for _, n := range opts.Inventory.Nodes {
			ips = append(ips, n.IP.String())
		}
	}
	st, msg := checkGenerationCommon(rep.Generations, len(rep.Nodes))
	rep.Architecture = append(rep.Architecture, CheckResult{ID: CheckGenerationCommon, Status: st, Message: msg})
	st, msg = checkGenerationCoverage(gen, rep.Nodes, ips)
	rep.Architecture = append(rep.Architecture, CheckResult{ID: CheckGenerationCoverage, Status: st, Message: msg})
	for _, c := range rep.Architecture {
		obs.Check(c)
	}
	return rep, ctxErr
}

// protectionSeconds returns the distinct protection times (s) of the
// node's loadable generations, for the node to render as its menu would.
func protectionSeconds(f *Facts) []int64 {
	var out []int64
	seen := map[int64]bool{}
	for _, gf := range f.GenerationFiles {
		if gf.Kind != GenerationOK || gf.Gen == nil {
			continue
		}
		s := gf.Gen.Time().Unix()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// applyShared records the output of round 2 into f.
func applyShared(f *Facts, out []byte, runErr error) {
	recs, perr := ParseRecords(out)
	complete := false
	var datesIn, datesOut []string
	for _, rec := range recs {
		v := string(rec.Value)
		switch {
		case rec.Key == "seen":
			f.ProbesSeen = append(f.ProbesSeen, v)
		case rec.Key == "missing":
			f.ProbesMissing = append(f.ProbesMissing, v)
		case rec.Key == "end":
			complete = true
		case rec.Key == "dates.in":
			datesIn = strings.Fields(v)
		case rec.Key == "dates.out":
			datesOut = lines(v)
		}
	}
	// The node's rendering is used only when it rendered every time.
	if len(datesIn) > 0 && len(datesIn) == len(datesOut) {
		f.LocalDates = map[int64]string{}
		for i, in := range datesIn {
			if t, err := strconv.ParseInt(strings.TrimPrefix(in, "@"), 10, 64); err == nil {
				f.LocalDates[t] = datesOut[i]
			}
		}
	}
	if !complete {
		f.SharedErr = errors.Join(runErr, perr, errors.New("the probe script stopped before its end"))
	}
}
