// Package tasks is what prapush does on nodes: gathering facts, the checks
// of verify, the generation logic, ad-hoc commands, and the bounded parallel
// runner. It never prints: progress goes to an Observer, results are data.
package tasks

import (
	"context"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// Status is the outcome of one check.
type Status string

// The check statuses of the spec.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// CheckResult is one check on one node, or on the architecture when Node is "".
type CheckResult struct {
	ID       string
	Node     string
	Status   Status
	Message  string // what was found vs what was expected
	Duration time.Duration
}

// DialFunc opens the connection to one node. The caller (cmd) builds it from
// the inventory, ssh_config, keys and known_hosts; tasks only calls it.
type DialFunc func(ctx context.Context, n inventory.Node) (transport.Conn, error)

// Observer receives progress. Implementations must be safe for concurrent
// use; tasks calls them from one goroutine per node.
type Observer interface {
	// NodeEvent reports that node entered a phase ("connect", "facts",
	// "checks", ...) or finished it; msg is free text for a live view.
	// Verify, Generations and Exec use the phases "connect", "facts",
	// "shared" (the cross-node probe) and "exec"; msg "done" ends one.
	NodeEvent(node, phase, msg string)
	// Check reports one finished check result as soon as it is known.
	Check(r CheckResult)
}

// NopObserver ignores everything.
type NopObserver struct{}

// NodeEvent implements Observer.
func (NopObserver) NodeEvent(node, phase, msg string) {}

// Check implements Observer.
func (NopObserver) Check(CheckResult) {}
