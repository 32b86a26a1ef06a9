package inventory

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Select returns the nodes a --limit expression names, in inventory order and
// without duplicates. limit is a comma-separated list of node names, glob
// patterns (path.Match syntax) and "tag:<tag>" selectors; "" selects every
// node. A name, pattern or tag that matches no node is an error naming it,
// so that a typo never silently narrows a run.
func (inv *Inventory) Select(limit string) ([]Node, error) {
	if strings.TrimSpace(limit) == "" {
		return append([]Node(nil), inv.Nodes...), nil
	}
	picked := make([]bool, len(inv.Nodes))
	var errs []error
	for _, sel := range strings.Split(limit, ",") {
		sel = strings.TrimSpace(sel)
		matched := false
		switch {
		case sel == "":
			errs = append(errs, errors.New("empty node selector in limit"))
			continue
		case strings.HasPrefix(sel, "tag:"):
			tag := strings.TrimPrefix(sel, "tag:")
			for i, n := range inv.Nodes {
				for _, t := range n.Tags {
					if t == tag {
						picked[i], matched = true, true
						break
					}
				}
			}
		case strings.ContainsAny(sel, `*?[\`):
			if _, err := path.Match(sel, ""); err != nil {
				errs = append(errs, fmt.Errorf("invalid node pattern %q: %w", sel, err))
				continue
			}
			for i, n := range inv.Nodes {
				if ok, _ := path.Match(sel, n.Name); ok {
					picked[i], matched = true, true
				}
			}
		default:
			for i, n := range inv.Nodes {
				if n.Name == sel {
					picked[i], matched = true, true
				}
			}
		}
		if !matched {
			errs = append(errs, fmt.Errorf("no node matches %q in the inventory", sel))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var nodes []Node
	for i, n := range inv.Nodes {
		if picked[i] {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// Core returns the core node: the bm/core server, restored last, where the
// post-operations run. A validated inventory has exactly one; the zero Node
// is returned for an inventory that was not built by Load or Parse.
func (inv *Inventory) Core() Node {
	for _, n := range inv.Nodes {
		if n.Core {
			return n
		}
	}
	return Node{}
}

// Stages groups nodes by Stage, ascending, keeping their order within a
// stage: the order in which a restore runs them, one stage after the other.
func Stages(nodes []Node) [][]Node {
	byStage := map[int][]Node{}
	for _, n := range nodes {
		byStage[n.Stage] = append(byStage[n.Stage], n)
	}
	keys := make([]int, 0, len(byStage))
	for k := range byStage {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	stages := make([][]Node, 0, len(keys))
	for _, k := range keys {
		stages = append(stages, byStage[k])
	}
	return stages
}
