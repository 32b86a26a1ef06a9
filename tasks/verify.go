package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// probeTries is how many times a node looks for the other probes, one
// second apart. A plain lookup can be answered from the NFS client's
// negative cache for up to acdirmin (30 s by default); the script then
// lists temp/, and opening a directory revalidates it (close-to-open), so
// a few tries are enough on a healthy share.
const probeTries = 5

// Verify connects to every node and runs one facts script per node, in one
// SSH session: it gathers the facts and writes the node's probe file; once
// every node has, each looks for the others' probes; once every node has
// looked, each removes its own (prapush drives the phases through the
// script's stdin). Then it evaluates every check and closes the
// connections. Parallel bounds the facts phase; the barrier phases involve
// every node at once. A node's failure is a result, not an error; the error
// is only ctx's, and comes with the report of what was gathered before ctx
// ended.
func Verify(ctx context.Context, opts Options) (*Report, error) {
	return verify(ctx, opts, defaultRoots, probeTries)
}

func verify(ctx context.Context, opts Options, roots scriptRoots, tries int) (*Report, error) {
	// Each node's facts session starts as soon as its own connection is
	// up, not once every node is connected: the handshakes of the slow
	// nodes overlap the scripts of the fast ones.
	sess := make([]*factsSession, len(opts.Nodes))
	f, _ := connect(ctx, opts, false, func(ctx context.Context, f *Fleet, i int) {
		sess[i] = f.phase1(ctx, i, roots, tries)
	})
	defer f.Close()
	return f.verify(ctx, roots, tries, sess)
}

// Verify runs verify's phases on the fleet's open connections and leaves
// them open, so that a restore reuses them. Options.Generation and RunID are
// the fleet's. Each call starts from the connect results again.
func (f *Fleet) Verify(ctx context.Context) (*Report, error) {
	return f.verify(ctx, defaultRoots, probeTries, make([]*factsSession, len(f.conns)))
}

// phase1 starts node i's facts session and waits until its facts and probe
// are written (or the session ended).
func (f *Fleet) phase1(ctx context.Context, i int, roots scriptRoots, tries int) *factsSession {
	opts := f.opts
	node := opts.Nodes[i]
	obs := opts.observer()
	obs.NodeEvent(node.Name, "facts", "gathering")
	run := factsRun{RunID: probeRunID(opts.RunID), Tries: tries, Dates: opts.NodeDates}
	s := startFacts(ctx, f.conns[i], posixSh(factsScript(roots, opts.arch(), node, run)))
	s.wait(opts.roundTimeout(), "gather facts", "phase1", "end")
	obs.NodeEvent(node.Name, "facts", "done")
	return s
}

// probeRunID is the run id that names the probes: the probe names travel
// as words through the script's stdin, so a run id that is not a plain
// name gets no probe ("").
func probeRunID(runID string) string {
	if !safeName(runID) {
		return ""
	}
	return runID
}

// verify runs the phases on the fleet's connections; sess holds the facts
// sessions already started (by connect's hook), nil for the others.
func (f *Fleet) verify(ctx context.Context, roots scriptRoots, tries int, sess []*factsSession) (*Report, error) {
	opts := f.opts
	obs := opts.observer()
	f.results = make([]NodeResult, len(f.base))
	for i, r := range f.base {
		r.Checks = slices.Clone(r.Checks)
		f.results[i] = r
	}
	start := time.Now()
	runID := probeRunID(opts.RunID)
	limit := opts.roundTimeout()
	arch := opts.arch()
	n := len(f.results)
	// Phase 1, at most Parallel nodes at once: facts, and the probe.
	forEach(ctx, n, opts.Parallel, func(ctx context.Context, i int) {
		if f.conns[i] != nil && sess[i] == nil {
			sess[i] = f.phase1(ctx, i, roots, tries)
		}
	})
	// Phase 2, every probe being written: each node looks for the others'.
	var probed []string
	for i, s := range sess {
		if s != nil && s.out.seen("phase1") && safeName(f.results[i].Node.Name) {
			probed = append(probed, f.results[i].Node.Name)
		}
	}
	looked := make([][]string, n) // the probes each node looked for
	forEach(ctx, n, 0, func(ctx context.Context, i int) {
		s := sess[i]
		if s == nil || !s.out.seen("phase1") {
			return
		}
		var others []string
		for _, o := range probed {
			if o != f.results[i].Node.Name {
				others = append(others, probeName(runID, o))
			}
		}
		looked[i] = others
		obs.NodeEvent(f.results[i].Node.Name, "shared", "looking for the other nodes' probes")
		s.send(strings.Join(others, " "))
		s.wait(limit+time.Duration(tries)*time.Second, "look for probes", "phase2", "end")
		obs.NodeEvent(f.results[i].Node.Name, "shared", "done")
	})
	// Phase 3, every node having looked: each removes its probe and ends.
	forEach(ctx, n, 0, func(ctx context.Context, i int) {
		s := sess[i]
		if s == nil {
			return
		}
		if s.out.seen("phase2") {
			s.send("rm")
			s.wait(limit, "remove probe", "end")
		}
		out, err := s.finish()
		r := &f.results[i]
		facts := r.setFacts(out, err)
		if facts == nil {
			return
		}
		if facts.ProbePhase >= 2 {
			// The script names the probes it missed: it saw the others.
			for _, p := range looked[i] {
				if !slices.Contains(facts.ProbesMissing, p) && !slices.Contains(facts.ProbesSeen, p) {
					facts.ProbesSeen = append(facts.ProbesSeen, p)
				}
			}
		}
		if facts.ProbePhase >= 1 && facts.ProbePhase < 2 && facts.ProbeUID >= 0 {
			facts.SharedErr = errors.Join(err, errors.New("the cross-node probe phase did not complete"))
		}
		if facts.ProbeUID >= 0 && !facts.ProbeRemoved && facts.ProbeRmErr == "" {
			facts.ProbeRmErr = "removal not confirmed"
			if err != nil {
				facts.ProbeRmErr += ": " + err.Error()
			}
		}
	})
	factsTook := time.Since(start)

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

// safeName reports whether s is a non-empty plain name ([A-Za-z0-9._-]),
// safe as a shell word and a file name.
func safeName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
