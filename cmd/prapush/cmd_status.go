package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
)

// statusTail is how much of each node's output status reads to find the
// current step.
const statusTail = 8192

func (a *app) cmdStatus(ctx context.Context, args []string) error {
	rc, err := a.connectRun(ctx, "status", args)
	if err != nil {
		return err
	}
	defer rc.Close()
	rf, dir, fleet, results := rc.rf, rc.dir, rc.fleet, rc.results
	w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(a.env.Stdout, "run %s  generation %d  (%s)\n", rf.RunID, rf.State.Generation, dir)
	fmt.Fprintln(w, "NODE\tSTAGE\tLOCAL\tREMOTE\tSTEP")
	code := exitOK
	for i, nr := range rf.State.Nodes {
		remote, step := "unreachable", ""
		if c := fleet.Conn(i); c != nil {
			s, err := tasks.ReadRunStatus(ctx, c, rf.RunID, statusTail)
			switch {
			case err != nil:
				remote = "unknown: " + err.Error()
				code = worstExit(code, exitFailed)
			case s.Missing:
				remote = "no run directory"
			case s.Exit != "":
				remote = "exited " + s.Exit
			case s.Alive && !s.Started:
				remote = "waiting to start"
			case s.Alive:
				remote = "running"
			default:
				remote = "dead (no exit status)"
			}
			if err == nil && len(s.Tail) > 0 {
				name, st := tasks.CurrentStep(s.Tail)
				if name != "" {
					step = name + " (" + st + ")"
				}
			}
		} else {
			code = worstExit(code, exitUnreachable)
			if results[i].DialErr != nil {
				remote = "unreachable: " + results[i].DialErr.Error()
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", report.SanitizeText(nr.Plan.Node), strconv.Itoa(nr.Plan.Stage), nr.Status, report.SanitizeText(remote), report.SanitizeText(step))
	}
	w.Flush()
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}
