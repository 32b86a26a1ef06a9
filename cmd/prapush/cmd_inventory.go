package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/prapush/prapush/inventory"
)

// loadInventory loads and validates the inventory and selects the --limit
// nodes. Every failure is a usage error (exit 2): nothing was contacted.
func (a *app) loadInventory() (*inventory.Inventory, []inventory.Node, error) {
	inv, err := inventory.Load(a.g.inventory)
	if err != nil {
		var ie *inventory.Error
		if errors.As(err, &ie) {
			for _, p := range ie.Problems {
				fmt.Fprintf(a.env.Stderr, "prapush: error: %s\n", p.Error())
			}
			return nil, nil, usageErr("inventory %s: %d problem(s), nothing was contacted", a.g.inventory, len(ie.Problems))
		}
		return nil, nil, usageErr("%v", err)
	}
	nodes, err := inv.Select(a.g.limit)
	if err != nil {
		return nil, nil, usageErr("--limit: %v", err)
	}
	return inv, nodes, nil
}

// resolvedNode is what `inventory check` shows of a node: the values that
// will be used to reach it.
type resolvedNode struct {
	Name          string   `json:"name"`
	IP            string   `json:"ip"`
	Address       string   `json:"address"`
	Port          int      `json:"port"`
	User          string   `json:"user"`
	Jump          []string `json:"jump"`
	IdentityFiles []string `json:"identity_files"`
	KnownHosts    []string `json:"known_hosts"`
	HostKeyPolicy string   `json:"host_key_policy"`
	Become        string   `json:"become"`
	Core          bool     `json:"core"`
	Stage         int      `json:"stage"`
	Tags          []string `json:"tags"`
	RestoreScript string   `json:"restore_script"`
	Python        string   `json:"python"`
}

func (a *app) cmdInventory(ctx context.Context, args []string) error {
	rest, err := a.parseCommandFlags("inventory", args, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 || rest[0] != "check" {
		return usageErr("usage: prapush inventory check")
	}
	inv, nodes, err := a.loadInventory()
	if err != nil {
		return err
	}
	var out []resolvedNode
	for _, n := range nodes {
		t, err := a.target(n)
		if err != nil {
			return usageErr("node %s: %v", n.Name, err)
		}
		var jumps []string
		for _, h := range t.Jumps {
			jumps = append(jumps, h.User+"@"+h.Host+":"+strconv.Itoa(h.Port))
		}
		out = append(out, resolvedNode{
			Name: n.Name, IP: n.IP.String(), Address: t.Host, Port: t.Port, User: t.User,
			Jump: jumps, IdentityFiles: a.identityFiles(n), KnownHosts: t.KnownHosts,
			HostKeyPolicy: string(t.HostKeyPolicy), Become: t.Become, Core: n.Core, Stage: n.Stage,
			Tags: n.Tags, RestoreScript: n.RestoreScript, Python: n.Python,
		})
	}
	if a.g.output == "json" {
		enc := json.NewEncoder(a.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"inventory":    map[string]string{"path": inv.Path, "sha256": inv.SHA256, "architecture": inv.Architecture.Name},
			"architecture": inv.Architecture,
			"nodes":        out,
		})
	}
	fmt.Fprintf(a.env.Stdout, "inventory %s: architecture %q, %d node(s), %d stage(s), external url %s, BlueMind %s\n",
		inv.Path, inv.Architecture.Name, len(nodes), len(inventory.Stages(nodes)), inv.Architecture.ExternalURL, inv.Architecture.BlueMindVersion)
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tIP\tCONNECT\tUSER\tJUMP\tBECOME\tHOSTKEYS\tSTAGE\tCORE\tKEY FILES")
	for _, r := range out {
		core := ""
		if r.Core {
			core = "core"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.IP, r.Address, r.Port, r.User,
			dash(strings.Join(r.Jump, ",")), dash(r.Become), r.HostKeyPolicy, r.Stage, core, dash(strings.Join(r.IdentityFiles, ",")))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
