package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

func testApp(strict bool) *app {
	return &app{g: &globals{output: "text", color: "never", strict: strict}, env: &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}}
}

func nodeResult(name string, checks ...tasks.CheckResult) tasks.NodeResult {
	return tasks.NodeResult{Node: inventory.Node{Name: name, IP: netip.MustParseAddr("192.0.2.1")}, Reachable: true, Checks: checks}
}

// The exit code of a check run follows the spec's table and its priority
// order, whatever the order the results come in.
func TestVerdict_FollowsTheSpecPriority(t *testing.T) {
	pass := tasks.CheckResult{ID: "backup.present", Status: tasks.Pass}
	fail := tasks.CheckResult{ID: "host.ip", Status: tasks.Fail}
	warn := tasks.CheckResult{ID: "os.release", Status: tasks.Warn}
	busy := tasks.CheckResult{ID: "backup.idle", Status: tasks.Fail}
	unreachable := tasks.NodeResult{Node: inventory.Node{Name: "down"}, DialErr: fmt.Errorf("dial: %w", transport.ErrUnreachable)}
	timedOut := nodeResult("slow")
	timedOut.FactsErr = fmt.Errorf("gather facts: %w", tasks.ErrTimeout)
	cut := nodeResult("cut")
	cut.FactsErr = errors.New("gather facts: the script stopped before its end")
	for _, c := range []struct {
		name   string
		strict bool
		nodes  []tasks.NodeResult
		want   int
	}{
		{"all pass", false, []tasks.NodeResult{nodeResult("a", pass)}, exitOK},
		{"warning allowed", false, []tasks.NodeResult{nodeResult("a", pass, warn)}, exitOK},
		{"warning with --strict", true, []tasks.NodeResult{nodeResult("a", warn)}, exitFailed},
		{"a failed check", false, []tasks.NodeResult{nodeResult("a", pass), nodeResult("b", fail)}, exitFailed},
		{"busy beats failed", false, []tasks.NodeResult{nodeResult("a", fail), nodeResult("b", busy)}, exitBusy},
		{"unreachable beats busy", false, []tasks.NodeResult{nodeResult("a", busy), unreachable}, exitUnreachable},
		{"facts cut short is not ready", false, []tasks.NodeResult{nodeResult("a", pass), cut}, exitFailed},
		{"facts over the time limit", false, []tasks.NodeResult{timedOut, nodeResult("b", fail)}, exitTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := testApp(c.strict)
			rep := &report.Report{}
			fillNodes(rep, c.nodes)
			if got := a.verdict(rep, c.nodes, nil); got != c.want {
				t.Errorf("verdict = %d, want %d", got, c.want)
			}
		})
	}
}

func TestWorstExit_Priority(t *testing.T) {
	if got := worstExit(exitDetached, exitInterrupted, exitFailed); got != exitFailed {
		t.Errorf("worstExit(6,130,1) = %d, want 1", got)
	}
	if got := worstExit(exitFailed, exitTimeout, exitBusy, exitUnreachable, exitUsage); got != exitUsage {
		t.Errorf("worstExit = %d, want 2", got)
	}
	if got := worstExit(); got != exitOK {
		t.Errorf("worstExit() = %d, want 0", got)
	}
}
