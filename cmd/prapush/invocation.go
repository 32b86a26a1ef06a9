package main

import (
	"context"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/tasks"
)

// invocation is what every command that contacts nodes starts from: the
// validated inventory, the selected nodes, the keys loaded once, and the
// run's identity.
type invocation struct {
	inv     *inventory.Inventory
	nodes   []inventory.Node
	au      *authenticator
	started time.Time
	runID   string
}

// begin loads the inventory (exit 2 on any problem, before any contact),
// loads the keys and names the run. The caller closes it.
func (a *app) begin() (*invocation, error) {
	inv, nodes, err := a.loadInventory()
	if err != nil {
		return nil, err
	}
	au, err := a.newAuthenticator(nodes)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	return &invocation{inv: inv, nodes: nodes, au: au, started: started, runID: newRunID(started)}, nil
}

// options returns the task options of this invocation, reporting to obs.
func (iv *invocation) options(a *app, obs tasks.Observer) tasks.Options {
	return tasks.Options{Inventory: iv.inv, Nodes: iv.nodes, Dial: a.dialer(iv.au), Parallel: a.g.parallel, Observer: obs, RunID: iv.runID}
}

// Close forgets the keys and closes the agent connection.
func (iv *invocation) Close() { iv.au.Close() }

// noArgs refuses positional arguments for a command that takes none.
func noArgs(name string, rest []string) error {
	if len(rest) > 0 {
		return usageErr("%s: unexpected argument %q", name, rest[0])
	}
	return nil
}

// optionalArg returns the one optional positional argument (e.g. RUN-ID),
// or "".
func optionalArg(name string, rest []string) (string, error) {
	if len(rest) > 1 {
		return "", usageErr("%s: unexpected argument %q", name, rest[1])
	}
	if len(rest) == 1 {
		return rest[0], nil
	}
	return "", nil
}

// runConnection is a recorded run (its state.json) with a connection to
// each of its nodes, for attach and status.
type runConnection struct {
	rf      *runFile
	dir     string
	inv     *inventory.Inventory
	nodes   []inventory.Node
	au      *authenticator
	fleet   *tasks.Fleet
	results []tasks.NodeResult
	unlock  func() // attach's lock on the run; nil for status
}

// connectRun parses `name [RUN-ID]`, opens the run and connects to its
// nodes. The caller closes it.
func (a *app) connectRun(ctx context.Context, name string, args []string) (*runConnection, error) {
	rest, err := a.parseCommandFlags(name, args, nil)
	if err != nil {
		return nil, err
	}
	ref, err := optionalArg(name, rest)
	if err != nil {
		return nil, err
	}
	rf, dir, inv, nodes, err := a.openRun(name, ref)
	if err != nil {
		return nil, err
	}
	var unlock func()
	if name == "attach" {
		// Follow only under the run's lock, and read its state again
		// under it: the state read before may predate the last follower.
		if unlock, err = lockRun(dir); err != nil {
			return nil, err
		}
		if rf, dir, inv, nodes, err = a.openRun(name, dir); err != nil {
			unlock()
			return nil, err
		}
	}
	au, err := a.newAuthenticator(nodes)
	if err != nil {
		if unlock != nil {
			unlock()
		}
		return nil, err
	}
	fleet, results := tasks.Connect(ctx, tasks.Options{Inventory: inv, Nodes: nodes, Dial: a.dialer(au), Parallel: a.g.parallel, Observer: a.observer(), RunID: rf.RunID})
	return &runConnection{rf: rf, dir: dir, inv: inv, nodes: nodes, au: au, fleet: fleet, results: results, unlock: unlock}, nil
}

// Close closes the connections and forgets the keys.
func (rc *runConnection) Close() {
	rc.fleet.Close()
	rc.au.Close()
	if rc.unlock != nil {
		rc.unlock()
	}
}
