package main

import (
	"context"

	"path/filepath"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/transport"
)

func (a *app) cmdAttach(ctx context.Context, args []string) error {
	rc, err := a.connectRun(ctx, "attach", args)
	if err != nil {
		return err
	}
	defer rc.Close()
	rf, dir, inv, nodes, fleet, results := rc.rf, rc.dir, rc.inv, rc.nodes, rc.fleet, rc.results
	conns := make([]transport.Conn, len(nodes))
	for i := range nodes {
		conns[i] = fleet.Conn(i)
	}
	rep, err := report.ReadJSON(filepath.Join(dir, report.FileJSON))
	if err != nil {
		rep = a.newReport("restore", rf.RunID, inv, rf.StartedAt)
		rep.Generation = rf.Generation
	}
	rep.Notes = append(rep.Notes, "attached at "+time.Now().UTC().Format(time.RFC3339))
	var unreachable []string
	for _, r := range results {
		if r.DialErr != nil {
			unreachable = append(unreachable, r.Node.Name+": "+r.DialErr.Error())
		}
	}
	if len(unreachable) > 0 {
		for _, u := range unreachable {
			rep.Notes = append(rep.Notes, "attach: "+u)
		}
		fillRestore(rep, rf)
		a.finish(rep, exitUnreachable)
		a.printRestore(rep, rf)
		if err := a.writeReport(dir, rep); err != nil {
			return err
		}
		return &exitError{code: exitUnreachable}
	}
	return a.runRestore(ctx, dir, rep, rf, inv, nodes, conns, false)
}

// openRun loads a run's state and the inventory nodes of its runs (the
// inventory it was started with unless -i names another that exists).
func (a *app) openRun(cmd, ref string) (*runFile, string, *inventory.Inventory, []inventory.Node, error) {
	rf, dir, err := a.loadRun(ref, true)
	if err != nil {
		return nil, "", nil, nil, usageErr("%s: %v", cmd, err)
	}
	if !fileExists(a.g.inventory) && rf.Inventory != "" {
		a.g.inventory = rf.Inventory
	}
	inv, _, err := a.loadInventory()
	if err != nil {
		return nil, "", nil, nil, err
	}
	var nodes []inventory.Node
	for _, nr := range rf.State.Nodes {
		found := false
		for _, n := range inv.Nodes {
			if n.Name == nr.Plan.Node {
				nodes = append(nodes, n)
				found = true
			}
		}
		if !found {
			return nil, "", nil, nil, usageErr("%s: node %q of run %s is not in %s", cmd, nr.Plan.Node, rf.RunID, inv.Path)
		}
	}
	if len(nodes) == 0 {
		return nil, "", nil, nil, usageErr("%s: run %s has no node", cmd, rf.RunID)
	}
	return rf, dir, inv, nodes, nil
}
