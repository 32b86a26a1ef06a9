package tasks

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// NodePlan is what restore intends to do on one node (spec restore item 3).
type NodePlan struct {
	Node      string `json:"node"`
	Stage     int    `json:"stage"`
	MenuIndex int    `json:"menu_index"`
	// MenuLine is the expected menu line at MenuIndex, with the date
	// rendered on the node by the script's interpreter in its time zone.
	MenuLine string   `json:"menu_line"`
	Family   string   `json:"family"`
	Python   string   `json:"python"`
	Script   string   `json:"script"`
	Tags     []string `json:"tags"`     // tags of the parts this node restores, in file order
	PartIDs  []int    `json:"part_ids"` // their part ids
}

// Plan is a restore's plan: one generation, every node's NodePlan.
type Plan struct {
	Generation *Generation `json:"-"`
	GenID      int         `json:"generation_id"`
	Nodes      []NodePlan  `json:"nodes"` // like the nodes given to BuildPlan
}

// ErrPlan means a node cannot be planned: its restore would not be
// verifiable (see the error's text).
var ErrPlan = errors.New("cannot plan the restore")

// Command is one remote command of the restore engine. Mutating is not
// optional: every constructor says whether its command changes the node,
// and a dry run refuses to send one that does (design rule 3).
type Command struct {
	Line     string
	Mutating bool
	What     string // for errors and traces
}

// ErrDryRunMutation is returned when a dry run tries to send a mutating
// command: a bug, never a node's state.
var ErrDryRunMutation = errors.New("dry run refused a command that changes the node")

// Sender sends Commands, refusing mutating ones in a dry run. Trace, when
// set, sees every command before it is sent (tests record them).
type Sender struct {
	DryRun bool
	Trace  func(node string, c Command)
}

// Send runs c on conn, under a POSIX sh whatever root's login shell is.
func (s *Sender) Send(ctx context.Context, node string, conn transport.Conn, c Command, stdout *strings.Builder) error {
	if s != nil && s.Trace != nil {
		s.Trace(node, c)
	}
	if s != nil && s.DryRun && c.Mutating {
		return fmt.Errorf("%s on %s: %w", c.What, node, ErrDryRunMutation)
	}
	var out strings.Builder
	if stdout == nil {
		stdout = &out
	}
	var errb strings.Builder
	// Through sh -c: root's login shell may be zsh, csh or fish, where the
	// engine's scripts (word splitting, ${x##pat}) mean something else.
	if err := conn.Run(ctx, posixSh(c.Line), nil, stdout, &errb); err != nil {
		var ee *transport.ExitError
		if errors.As(err, &ee) && ee.Stderr == "" {
			ee.Stderr = truncate(errb.String(), 300)
		}
		return fmt.Errorf("%s on %s: %w", c.What, node, err)
	}
	return nil
}

// renderDateCmd renders protection time secs (seconds) as the script does:
// time.localtime with the script's interpreter, from the script's folder.
func renderDateCmd(python, script string, secs int64) Command {
	code := `import sys, time; sys.stdout.write(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(sys.argv[1]))))`
	return Command{
		Line: "cd " + transport.QuoteArg(path.Dir(script)) + " && " + transport.Quote(python, "-c", code, strconv.FormatInt(secs, 10)),
		What: "render the menu date",
	}
}

// BuildPlan plans the restore of rep.Chosen on every node of rep (the
// gate's report: every check passed) using conns (like rep.Nodes) to render
// each node's menu date with its own interpreter and time zone. It sends
// only read-only commands. A node whose plan cannot be trusted is an
// ErrPlan error naming it; every node is tried, the errors joined.
func BuildPlan(ctx context.Context, rep *Report, conns []transport.Conn, s *Sender) (*Plan, error) {
	g := rep.Chosen
	if g == nil {
		return nil, fmt.Errorf("build plan: no generation chosen: %w", ErrPlan)
	}
	p := &Plan{Generation: g, GenID: g.ID}
	var errs []error
	for i, r := range rep.Nodes {
		np := NodePlan{Node: r.Node.Name, Stage: r.Node.Stage, MenuIndex: r.MenuIndex, Python: r.Node.Python, Script: r.Node.RestoreScript}
		if np.Python == "" {
			np.Python = inventory.DefaultPython
		}
		if np.Script == "" {
			np.Script = inventory.DefaultRestoreScript
		}
		f := r.Facts
		switch {
		case f == nil || !f.Complete:
			errs = append(errs, fmt.Errorf("plan %s: the node's facts are incomplete: %w", r.Node.Name, ErrPlan))
			p.Nodes = append(p.Nodes, np)
			continue
		case r.MenuIndex < 1:
			errs = append(errs, fmt.Errorf("plan %s: generation %d has no menu index on the node: %w", r.Node.Name, g.ID, ErrPlan))
			p.Nodes = append(p.Nodes, np)
			continue
		}
		np.Family = f.ScriptFamily
		for _, part := range nodeParts(f, r.Node.IP.String(), g) {
			if !slices.Contains(np.Tags, part.Tag) {
				np.Tags = append(np.Tags, part.Tag)
			}
			np.PartIDs = append(np.PartIDs, part.ID)
		}
		var conn transport.Conn
		if i < len(conns) {
			conn = conns[i]
		}
		if conn == nil {
			errs = append(errs, fmt.Errorf("plan %s: not connected: %w", r.Node.Name, ErrPlan))
			p.Nodes = append(p.Nodes, np)
			continue
		}
		var out strings.Builder
		if err := s.Send(ctx, r.Node.Name, conn, renderDateCmd(np.Python, np.Script, g.Time().Unix()), &out); err != nil {
			errs = append(errs, fmt.Errorf("plan %s: %w: %w", r.Node.Name, ErrPlan, err))
			p.Nodes = append(p.Nodes, np)
			continue
		}
		date := out.String()
		if _, err := time.Parse(MenuDateLayout, date); err != nil {
			errs = append(errs, fmt.Errorf("plan %s: the interpreter rendered the date as %q: %w", r.Node.Name, truncate(date, 40), ErrPlan))
			p.Nodes = append(p.Nodes, np)
			continue
		}
		np.MenuLine = MenuLine{Index: r.MenuIndex, Date: date, DisplayName: g.DisplayName, Status: g.StatusText()}.String()
		p.Nodes = append(p.Nodes, np)
	}
	return p, errors.Join(errs...)
}

// defaultStepTimeouts are the known endless waits of domain §3.4.
var defaultStepTimeouts = map[string]time.Duration{
	"Waiting for ES cluster is up": 30 * time.Minute,
}

// StepTimeout returns the limit of step desc on node n: the node's
// step_timeouts, else flag (--step-timeout, 0 = none), else the known
// endless waits' defaults; 0 means no limit.
func StepTimeout(n inventory.Node, flag time.Duration, desc string) time.Duration {
	if d, ok := n.StepTimeouts[desc]; ok {
		return d
	}
	if flag > 0 {
		return flag
	}
	return defaultStepTimeouts[desc]
}
