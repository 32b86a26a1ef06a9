package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

// cmdPost (re)runs the automated post-operations on the core node. With
// RUN-ID, the run's report (under prapush-reports/, or --report-dir) gets
// the new post_operations and its verdict is recomputed; without, or when
// the run is not found, a new report is written (command "post").
func (a *app) cmdPost(ctx context.Context, args []string) error {
	var noResync, noPost bool
	rest, err := a.parseCommandFlags("post", args, func(fs flagSet) {
		fs.BoolVar(&noResync, "no-resync", false, "")
		fs.BoolVar(&noPost, "no-post", false, "")
	})
	if err != nil {
		return err
	}
	if len(rest) > 1 {
		return usageErr("post: unexpected argument %q", rest[1])
	}
	ref := ""
	if len(rest) == 1 {
		ref = rest[0]
	}
	var notes []string
	var rf *runFile
	var dir string
	if ref != "" {
		rf, dir, err = a.loadRun(ref, true)
		if err != nil {
			rf = nil
			notes = append(notes, fmt.Sprintf("run %s not found (%v): this report is a new one", ref, err))
			fmt.Fprintf(a.env.Stderr, "prapush: warning: run %s not found: writing a new report\n", ref)
		} else if !fileExists(a.g.inventory) && rf.Inventory != "" {
			a.g.inventory = rf.Inventory
		}
	}
	inv, _, err := a.loadInventory()
	if err != nil {
		return err
	}
	opts, err := postOptions(inv, rf, noResync, noPost)
	if err != nil {
		return usageErr("post: %v", err)
	}
	var core inventory.Node
	for _, n := range inv.Nodes {
		if n.Core {
			core = n
		}
	}
	if a.g.limit != "" {
		notes = append(notes, "--limit ignored: the post-operations run on the core node "+core.Name)
	}
	started := time.Now()
	runID := newRunID(started)
	if rf != nil {
		runID = rf.RunID
		for _, n := range rf.State.Nodes {
			if n.Status != tasks.RestoreSuccess {
				notes = append(notes, fmt.Sprintf("post-operations run although %s's restore is %s in run %s", n.Plan.Node, n.Status, rf.RunID))
			}
		}
	} else {
		dir = a.reportDir(runID)
	}

	au, err := a.newAuthenticator([]inventory.Node{core})
	if err != nil {
		return err
	}
	defer au.Close()
	fleet, connected := tasks.Connect(ctx, tasks.Options{Inventory: inv, Nodes: []inventory.Node{core}, Dial: a.dialer(au), Observer: a.observer(), RunID: runID})
	defer fleet.Close()
	var results []tasks.PostResult
	if c := fleet.Conn(0); c != nil {
		results = tasks.PostOperations(ctx, c, opts, a.postObserver())
	}

	var rep *report.Report
	base := exitOK
	if rf != nil {
		rep, err = report.ReadJSON(filepath.Join(dir, report.FileJSON))
		if err != nil {
			notes = append(notes, "the run's report.json could not be read ("+err.Error()+"): rewritten from the run's state")
			rep = a.newReport("restore", rf.RunID, inv, rf.StartedAt)
			rep.Generation = rf.Generation
			fillRestore(rep, rf)
		}
		base = restoreCode(rep)
		rep.Notes = append(rep.Notes, "post-operations run by prapush post at "+started.UTC().Format(time.RFC3339))
	} else {
		rep = a.newReport("post", runID, inv, started)
		fillNodes(rep, connected)
	}
	rep.Notes = append(rep.Notes, notes...)
	code := worstExit(base, a.postCode(rep, connected, results))
	if ctx.Err() != nil {
		code = worstExit(code, interruptCode(ctx))
	}
	a.finish(rep, code)
	a.printPost(rep, core.Name)
	if err := a.writeReport(dir, rep); err != nil {
		return err
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// postOptions returns the post-operations' options for inv and what run rf
// (nil = none) knows: the restored generation (bm.ini is compared with its
// copy in the backup) and when the last node's restore ended. restore
// calls it too, with its --no-resync and --no-post.
func postOptions(inv *inventory.Inventory, rf *runFile, noResync, noPost bool) (tasks.PostOptions, error) {
	opts, err := tasks.PostOptionsFor(inv)
	if err != nil {
		return opts, err
	}
	opts.NoResync, opts.NoPost = noResync, noPost
	if rf != nil && rf.State != nil {
		opts.Generation = rf.State.Generation
		for _, n := range rf.State.Nodes {
			if n.EndedAt.After(opts.RestoreEnded) {
				opts.RestoreEnded = n.EndedAt
			}
		}
	}
	return opts, nil
}

// restoreCode is the exit code of a restore report without its
// post-operations: success when every node was restored, else what the
// report said.
func restoreCode(rep *report.Report) int {
	if len(rep.Nodes) == 0 {
		return rep.ExitCode
	}
	for _, n := range rep.Nodes {
		if n.Restore == nil || n.Restore.Status != tasks.RestoreSuccess {
			return rep.ExitCode
		}
	}
	return exitOK
}

// postCode fills rep.PostOperations from results and returns the exit code
// they mean: 3 when the core could not be reached (connected: the connect
// results of the core, may be nil), 4 for a time limit, 1 for a failure (a
// warning too with --strict, then recorded as a failure).
func (a *app) postCode(rep *report.Report, connected []tasks.NodeResult, results []tasks.PostResult) int {
	var codes []int
	for _, r := range connected {
		if r.DialErr == nil {
			continue
		}
		if errors.Is(r.DialErr, transport.ErrPrivilege) {
			codes = append(codes, exitFailed)
		} else {
			codes = append(codes, exitUnreachable)
		}
		rep.Notes = append(rep.Notes, "post: "+r.Node.Name+": "+r.DialErr.Error()+": no post-operation ran")
	}
	rep.PostOperations = make([]report.PostOp, 0, len(results))
	for _, r := range results {
		st, msg := string(r.Status), r.Message
		if r.Status == tasks.Warn && a.g.strict {
			st, msg = string(tasks.Fail), "(strict) "+msg
		}
		rep.PostOperations = append(rep.PostOperations, report.PostOp{ID: r.ID, Status: st, Message: msg})
		switch {
		case r.TimedOut:
			codes = append(codes, exitTimeout)
		case st == string(tasks.Fail):
			codes = append(codes, exitFailed)
		}
	}
	return worstExit(codes...)
}

// printPost prints every post-operation result (they are few and each one
// says something the operator must know), then the verdict.
func (a *app) printPost(rep *report.Report, core string) {
	if a.g.output == "json" {
		_ = report.WriteJSON(a.env.Stdout, rep)
		return
	}
	p := painter{on: a.useColor()}
	w := a.env.Stdout
	for _, r := range rep.PostOperations {
		fmt.Fprintf(w, "%s  %s  %-22s %s\n", report.SanitizeText(core), p.status(r.Status), r.ID, report.SanitizeText(r.Message))
	}
	verdict := p.paint("OK", colorGreen...)
	if rep.ExitCode != exitOK {
		verdict = p.paint("FAILED", colorRed...)
	}
	fmt.Fprintf(w, "post %s: %s (exit %d)\n", rep.RunID, verdict, rep.ExitCode)
}

// postObserver prints the progress of the post-operations on stderr as it
// happens (waiting for the core or a task can take minutes); the results
// are printed once, at the end.
func (a *app) postObserver() tasks.Observer {
	if a.g.output == "json" {
		return tasks.NopObserver{}
	}
	return &postLines{lineObserver: lineObserver{w: a.env.Stderr}}
}

type postLines struct{ lineObserver }

func (o *postLines) Check(tasks.CheckResult) {}
