package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

// busyChecks are the check ids whose failure means "something is already
// running" (exit 5) rather than "not ready" (exit 1).
var busyChecks = map[string]bool{"backup.idle": true, "restore.idle": true}

func (a *app) cmdVerify(ctx context.Context, args []string) error {
	var generation string
	rest, err := a.parseCommandFlags("verify", args, func(fs flagSet) {
		fs.StringVar(&generation, "generation", "", "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("verify", rest); err != nil {
		return err
	}
	iv, err := a.begin()
	if err != nil {
		return err
	}
	defer iv.Close()
	inv, runID, started := iv.inv, iv.runID, iv.started
	obs, stopLive := a.liveObserver(iv.nodes, a.observer())
	opts := iv.options(a, obs)
	opts.Generation = generation
	res, verr := tasks.Verify(ctx, opts)
	stopLive()
	if res == nil {
		return verr
	}
	rep := a.newReport("verify", runID, inv, started)
	fillNodes(rep, res.Nodes)
	rep.ArchitectureChecks = convertChecks(res.Architecture)
	code := a.verdict(rep, res.Nodes, res.Architecture)
	if verr != nil {
		code = worstExit(code, interruptCode(ctx))
		rep.Notes = append(rep.Notes, "run stopped early: "+verr.Error())
	}
	a.finish(rep, code)
	a.printVerify(rep)
	if err := a.writeReport(a.reportDir(runID), rep); err != nil {
		return err
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// interruptCode is the exit code of a run cut short by ctx.
func interruptCode(ctx context.Context) int {
	if errors.Is(context.Cause(ctx), errRunTimeout) {
		return exitTimeout
	}
	return exitInterrupted
}

func (a *app) newReport(command, runID string, inv *inventory.Inventory, started time.Time) *report.Report {
	rep := &report.Report{
		Schema:    report.Schema,
		RunID:     runID,
		Command:   command,
		StartedAt: started.UTC(),
		Inventory: report.Inventory{Path: inv.Path, SHA256: inv.SHA256, Architecture: inv.Architecture.Name},
		Nodes:     []report.Node{},
	}
	if inv.Architecture.RTO > 0 {
		rep.RTO = &report.RTO{TargetS: int64(inv.Architecture.RTO / time.Second)}
	}
	return rep
}

func (a *app) finish(rep *report.Report, code int) {
	rep.FinishedAt = time.Now().UTC()
	rep.ExitCode = code
	rep.Verdict = report.VerdictPass
	if code != exitOK {
		rep.Verdict = report.VerdictFail
	}
	if rep.ArchitectureChecks == nil {
		rep.ArchitectureChecks = []report.Check{}
	}
	if rep.PostOperations == nil {
		rep.PostOperations = []report.PostOp{}
	}
}

func convertChecks(cs []tasks.CheckResult) []report.Check {
	out := make([]report.Check, 0, len(cs))
	for _, c := range cs {
		out = append(out, report.Check{ID: c.ID, Node: c.Node, Status: string(c.Status), Message: c.Message, DurationMS: c.Duration.Milliseconds()})
	}
	return out
}

func fillNodes(rep *report.Report, nodes []tasks.NodeResult) {
	for _, n := range nodes {
		rep.Nodes = append(rep.Nodes, report.Node{
			Name:      n.Node.Name,
			Address:   n.Node.Address,
			IP:        n.Node.IP.String(),
			Reachable: n.Reachable,
			Stage:     n.Node.Stage,
			Checks:    convertChecks(n.Checks),
		})
	}
}

// verdict computes the exit code of a check run per the spec's table and
// priority: connection failures 3, something already running 5, a failed
// check 1 (a warning too with --strict). With --strict, warnings are
// recorded as failures in the report so that every rendering agrees.
func (a *app) verdict(rep *report.Report, nodes []tasks.NodeResult, arch []tasks.CheckResult) int {
	codes := []int{}
	for _, n := range nodes {
		switch {
		case n.DialErr != nil && (errors.Is(n.DialErr, transport.ErrUnreachable) || errors.Is(n.DialErr, transport.ErrAuth) || errors.Is(n.DialErr, transport.ErrHostKey)):
			codes = append(codes, exitUnreachable)
		case n.Reachable && n.FactsErr != nil:
			// Checks that could not be evaluated are skipped, and a skip
			// is not a pass: a node whose facts are missing or cut is not
			// ready.
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: facts incomplete, its checks were skipped: %v", n.Node.Name, n.FactsErr))
			if errors.Is(n.FactsErr, tasks.ErrTimeout) {
				codes = append(codes, exitTimeout)
			} else {
				codes = append(codes, exitFailed)
			}
		}
	}
	mark := func(cs []report.Check) {
		for i := range cs {
			c := &cs[i]
			if c.Status == "warn" && a.g.strict {
				c.Status = "fail"
				c.Message = "(strict) " + c.Message
			}
			if c.Status != "fail" {
				continue
			}
			if busyChecks[c.ID] {
				codes = append(codes, exitBusy)
			} else {
				codes = append(codes, exitFailed)
			}
		}
	}
	for i := range rep.Nodes {
		mark(rep.Nodes[i].Checks)
	}
	mark(rep.ArchitectureChecks)
	return worstExit(codes...)
}

// printVerify prints the results: JSON (the report itself) or node-prefixed
// lines and a summary.
func (a *app) printVerify(rep *report.Report) {
	if a.g.output == "json" {
		_ = report.WriteJSON(a.env.Stdout, rep)
		return
	}
	p := painter{on: a.useColor()}
	width := len("architecture")
	for _, n := range rep.Nodes {
		width = max(width, len(n.Name))
	}
	for _, n := range rep.Nodes {
		printChecks(a.env.Stdout, p, width, n.Name, n.Checks, a.g.verbose)
	}
	printChecks(a.env.Stdout, p, width, "architecture", rep.ArchitectureChecks, a.g.verbose)
	fmt.Fprintln(a.env.Stdout)
	for _, n := range rep.Nodes {
		var pass, warn, fail, skip int
		for _, c := range n.Checks {
			switch c.Status {
			case "pass":
				pass++
			case "warn":
				warn++
			case "fail":
				fail++
			case "skip":
				skip++
			}
		}
		state := p.status("pass")
		switch {
		case !n.Reachable:
			state = p.status("fail") + " (unreachable)"
		case fail > 0:
			state = p.status("fail")
		case warn > 0:
			state = p.status("warn")
		}
		fmt.Fprintf(a.env.Stdout, "%-*s  stage %d  %s  %d pass, %d warn, %d fail, %d skip\n", width, n.Name, n.Stage, state, pass, warn, fail, skip)
	}
	for _, note := range rep.Notes {
		fmt.Fprintf(a.env.Stdout, "note: %s\n", report.SanitizeText(note))
	}
	verdict := p.paint("READY", colorGreen...)
	if rep.Verdict != report.VerdictPass {
		verdict = p.paint("NOT READY", colorRed...)
	}
	fmt.Fprintf(a.env.Stdout, "%s: %s (exit %d)\n", rep.Command, verdict, rep.ExitCode)
}

// observer returns the plain progress observer: node-prefixed progress
// lines on stderr with -v, nothing otherwise.
func (a *app) observer() tasks.Observer {
	if !a.g.verbose {
		return tasks.NopObserver{}
	}
	return &lineObserver{w: a.env.Stderr}
}

// liveObserver returns the progress observer of a run over nodes and the
// function that ends it, which the command calls before printing its
// results. With text output on a terminal that can move its cursor, it is
// the live view (one line per node, redrawn in place on stdout); otherwise
// it is plain, the command's usual line observer, so logs and CI output
// stay line-based.
func (a *app) liveObserver(nodes []inventory.Node, plain tasks.Observer) (tasks.Observer, func()) {
	if a.g.output == "json" || !isTerminal(a.env.Stdout) || a.env.Getenv("TERM") == "dumb" {
		return plain, func() {}
	}
	live := make([]report.LiveNode, len(nodes))
	for i, n := range nodes {
		live[i] = report.LiveNode{Name: n.Name, Stage: n.Stage}
	}
	v := report.NewLiveView(a.env.Stdout, live, a.useColor(), true, nil)
	return v, v.Stop
}
