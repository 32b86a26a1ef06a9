package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// Options are what every task needs.
type Options struct {
	Inventory *inventory.Inventory
	Nodes     []inventory.Node // selected nodes, in inventory order
	Dial      DialFunc
	Parallel  int      // nodes worked on at once; 0 = all
	Observer  Observer // nil = NopObserver
	// Generation is "" (none chosen), "latest" or the integer id of a
	// generation; when set, generation.parts and generation.coverage run.
	Generation string
	RunID      string // names the probe files; "" = no probe (backup.writable/shared skip)
	// RoundTimeout bounds each verify round trip on a node (0 =
	// FactsTimeout); a node over it has a FactsErr matching ErrTimeout.
	RoundTimeout time.Duration
	// NodeDates has every node render the generations' dates itself (a
	// date process per node), for a restore plan whose menu line must be
	// the one the script prints; otherwise they are rendered here in the
	// node's time zone.
	NodeDates bool
}

func (o *Options) roundTimeout() time.Duration {
	if o.RoundTimeout > 0 {
		return o.RoundTimeout
	}
	return FactsTimeout
}

func (o *Options) observer() Observer {
	if o.Observer == nil {
		return NopObserver{}
	}
	return o.Observer
}

func (o *Options) arch() inventory.Architecture {
	if o.Inventory == nil {
		return inventory.Architecture{}
	}
	return o.Inventory.Architecture
}

// NodeResult is what a task learned on one node.
type NodeResult struct {
	Node inventory.Node
	// Reachable says an SSH session was established (true also when root
	// could not be obtained: then DialErr matches transport.ErrPrivilege).
	Reachable bool
	// DialErr is the classified dial error: errors.Is it with
	// transport.ErrUnreachable, ErrAuth, ErrHostKey or ErrPrivilege.
	DialErr error
	// FactsErr says why the facts could not be gathered (or were cut).
	FactsErr error
	Checks   []CheckResult // in the order of the spec's table
	Facts    *Facts        // nil when no facts were gathered
	// MenuIndex and MenuLine are the chosen generation's entry in the
	// script's menu on this node (0 and "" when none was chosen or it is
	// not in the menu).
	MenuIndex int
	MenuLine  string
}

// Fleet holds one open connection per reachable node, reused by every
// phase of a task.
type Fleet struct {
	opts    Options
	conns   []transport.Conn // like opts.Nodes; nil when not connected
	base    []NodeResult     // the connect results
	results []NodeResult     // the current phase's results
}

// Options returns the options the fleet was connected with.
func (f *Fleet) Options() Options { return f.opts }

// Conns returns the connections indexed like Options().Nodes, nil for a
// node not connected. The slice is the caller's; the connections stay the
// fleet's (Close closes them).
func (f *Fleet) Conns() []transport.Conn { return slices.Clone(f.conns) }

// Conn returns the connection of the i-th node of the options, or nil.
func (f *Fleet) Conn(i int) transport.Conn { return f.conns[i] }

// Close closes every connection and joins their errors.
func (f *Fleet) Close() error {
	var errs []error
	for i, c := range f.conns {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", f.opts.Nodes[i].Name, err))
		}
		f.conns[i] = nil
	}
	return errors.Join(errs...)
}

// forEach calls fn for every index in [0, n) with at most limit calls at
// once (0 = unbounded) and waits for all. fn reports a node's failure in
// its result: nothing here cancels the others.
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int)) {
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i := range n {
		g.Go(func() error {
			fn(ctx, i)
			return nil
		})
	}
	_ = g.Wait() // fn never returns an error
}

// Connect dials every node (at most Parallel at once) and, on each one
// connected, runs `id -u` to evaluate ssh.privilege. The results hold the
// ssh.connect and ssh.privilege checks. The caller must Close the Fleet.
func Connect(ctx context.Context, opts Options) (*Fleet, []NodeResult) {
	return connect(ctx, opts, true, nil)
}

// connect dials every node; then, when not nil, runs on each node connected,
// in the same goroutine (so within the Parallel bound).
func connect(ctx context.Context, opts Options, probeUID bool, then func(ctx context.Context, f *Fleet, i int)) (*Fleet, []NodeResult) {
	f := &Fleet{opts: opts, conns: make([]transport.Conn, len(opts.Nodes)), results: make([]NodeResult, len(opts.Nodes))}
	obs := opts.observer()
	forEach(ctx, len(opts.Nodes), opts.Parallel, func(ctx context.Context, i int) {
		n := opts.Nodes[i]
		r := &f.results[i]
		r.Node = n
		obs.NodeEvent(n.Name, "connect", "dialling "+n.Address)
		start := time.Now()
		var c transport.Conn
		var err error
		if opts.Dial == nil {
			err = errors.New("no dial function")
		} else {
			c, err = opts.Dial(ctx, n)
		}
		r.DialErr = err
		r.Reachable = err == nil || errors.Is(err, transport.ErrPrivilege)
		if err == nil && c == nil {
			r.DialErr, r.Reachable = fmt.Errorf("dial %s: no connection returned: %w", n.Name, transport.ErrUnreachable), false
		}
		if r.DialErr == nil {
			f.conns[i] = c
		} else if c != nil {
			_ = c.Close() // a failed dial owns nothing the caller could use
		}
		res := checkSSHConnect(r)
		res.Duration = time.Since(start)
		r.Checks = append(r.Checks, res)
		obs.Check(res)
		if !probeUID {
			if r.DialErr != nil {
				res := checkSSHPrivilege(r)
				r.Checks = append(r.Checks, res)
				obs.Check(res)
			}
			obs.NodeEvent(n.Name, "connect", "done")
			if then != nil && f.conns[i] != nil {
				then(ctx, f, i)
			}
			return
		}
		if f.conns[i] != nil {
			start = time.Now()
			var out bytes.Buffer
			if err := f.conns[i].Run(ctx, "id -u", nil, &out, nil); err != nil {
				r.FactsErr = fmt.Errorf("run id -u: %w", err)
			} else if uid, err := strconv.Atoi(strings.TrimSpace(out.String())); err == nil {
				r.Facts = &Facts{UID: uid, ProbeUID: -1}
			}
		}
		res = checkSSHPrivilege(r)
		res.Duration = time.Since(start)
		r.Checks = append(r.Checks, res)
		obs.Check(res)
		// The uid alone is not the node's facts: callers expect Facts
		// only after the facts round trip.
		r.Facts = nil
		obs.NodeEvent(n.Name, "connect", "done")
		if then != nil && f.conns[i] != nil {
			then(ctx, f, i)
		}
	})
	f.base = make([]NodeResult, len(f.results))
	out := make([]NodeResult, len(f.results))
	for i, r := range f.results {
		r.Checks = slices.Clone(r.Checks)
		f.base[i] = r
		r.Checks = slices.Clone(r.Checks)
		out[i] = r
	}
	return f, out
}

// setFacts records what the facts script printed (out) and how its run
// ended (err): the parsed facts, and FactsErr when they are missing, cut or
// unparsable. It returns the facts, nil when the script printed nothing
// and failed.
func (r *NodeResult) setFacts(out []byte, err error) *Facts {
	facts, perr := ParseFacts(out)
	r.Facts = facts
	switch {
	case err != nil && !facts.Complete:
		r.FactsErr = fmt.Errorf("gather facts: %w", err)
	case perr != nil:
		r.FactsErr = fmt.Errorf("gather facts: %w", perr)
	case !facts.Complete:
		r.FactsErr = errors.New("gather facts: the script stopped before its end")
	case facts.ReadErr != "":
		r.FactsErr = errors.New("gather facts: " + facts.ReadErr)
	}
	if len(out) == 0 && err != nil {
		r.Facts = nil
	}
	return r.Facts
}
