package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

func (a *app) cmdGenerations(ctx context.Context, args []string) error {
	rest, err := a.parseCommandFlags("generations", args, nil)
	if err != nil {
		return err
	}
	if err := noArgs("generations", rest); err != nil {
		return err
	}
	iv, err := a.begin()
	if err != nil {
		return err
	}
	defer iv.Close()
	inv, runID, started := iv.inv, iv.runID, iv.started
	obs, stopLive := a.liveObserver(iv.nodes, a.observer())
	sum, results, gerr := tasks.Generations(ctx, iv.options(a, obs))
	stopLive()
	rep := a.newReport("generations", runID, inv, started)
	var codes []int
	for _, r := range results {
		c := report.Check{ID: "ssh.connect", Node: r.Node.Name, Status: "pass", Message: "connected"}
		if r.DialErr != nil {
			c.Status, c.Message = "fail", r.DialErr.Error()
			if errors.Is(r.DialErr, transport.ErrPrivilege) {
				c.ID = "ssh.privilege"
				codes = append(codes, exitFailed)
			} else {
				codes = append(codes, exitUnreachable)
			}
		} else if r.FactsErr != nil {
			c.ID, c.Status, c.Message = "generations.read", "fail", r.FactsErr.Error()
			codes = append(codes, exitFailed)
		}
		rep.Nodes = append(rep.Nodes, report.Node{Name: r.Node.Name, Address: r.Node.Address, IP: r.Node.IP.String(),
			Reachable: r.Reachable, Stage: r.Node.Stage, Checks: []report.Check{c}})
	}
	if gerr != nil {
		codes = append(codes, interruptCode(ctx))
		rep.Notes = append(rep.Notes, "run stopped early: "+gerr.Error())
	}
	if sum != nil {
		for _, c := range sum.Common {
			g := c.Generation
			rep.AvailableGenerations = append(rep.AvailableGenerations, report.AvailableGeneration{
				ID: c.ID, ProtectionTime: g.Time().UTC(), DisplayName: g.DisplayName, Status: g.StatusText(),
				Parts: len(g.Parts), SizeMB: c.TotalSizeMB, Restorable: c.Restorable, Reason: c.Reason,
			})
		}
		if len(sum.Restorable) == 0 {
			rep.Notes = append(rep.Notes, "no generation is restorable on every node")
		}
	}
	code := worstExit(codes...)
	a.finish(rep, code)
	if a.g.output == "json" {
		_ = report.WriteJSON(a.env.Stdout, rep)
	} else if sum != nil {
		a.printGenerations(sum)
	}
	if err := a.writeReport(a.reportDir(runID), rep); err != nil {
		return err
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

func (a *app) printGenerations(sum *tasks.GenerationSummary) {
	p := painter{on: a.useColor()}
	w := a.env.Stdout
	for _, ng := range sum.PerNode {
		if !ng.Read {
			fmt.Fprintf(w, "%s: generations not read\n\n", ng.Node)
			continue
		}
		fmt.Fprintf(w, "%s: %d generation file(s)\n", ng.Node, len(ng.Generations))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  MENU\tID\tDATE (node time)\tVERSION\tSTATUS\tPARTS\tSIZE\tNOTE")
		for _, g := range ng.Generations {
			menu := "-"
			if g.MenuIndex > 0 {
				menu = fmt.Sprint(g.MenuIndex)
			}
			note := g.Err
			if note == "" && !g.Restorable {
				note = "parts not all VALID and finished"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", menu, g.ID, report.SanitizeText(g.LocalTime), report.SanitizeText(g.DisplayName),
				report.SanitizeText(g.Status), g.Parts, sizeMB(g.TotalSizeMB), report.SanitizeText(note))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if len(sum.Unread) > 0 {
		fmt.Fprintf(w, "not read: %s\n", strings.Join(sum.Unread, ", "))
	}
	fmt.Fprintln(w, "common to every node (identical content):")
	if len(sum.Common) == 0 {
		fmt.Fprintln(w, "  none")
	}
	latest, _ := tasks.Latest(sum.Common)
	for _, c := range sum.Common {
		state := p.paint("restorable", colorGreen...)
		if !c.Restorable {
			state = p.status("fail") + " " + report.SanitizeText(c.Reason)
		}
		mark := ""
		if latest != nil && latest.ID == c.ID {
			mark = "  (latest)"
		}
		fmt.Fprintf(w, "  %d  %s UTC  %s  %s  %s%s\n", c.ID, c.Generation.Time().UTC().Format("2006-01-02 15:04:05"),
			report.SanitizeText(c.Generation.DisplayName), sizeMB(c.TotalSizeMB), state, mark)
	}
}

func sizeMB(mb int64) string {
	if mb >= 10240 {
		return fmt.Sprintf("%.1f GB", float64(mb)/1024)
	}
	return fmt.Sprintf("%d MB", mb)
}
