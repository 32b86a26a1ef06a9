package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

func (a *app) cmdExec(ctx context.Context, args []string) error {
	argv, err := a.parseCommandFlags("exec", args, nil)
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		return usageErr("usage: prapush exec -- CMD [ARG...]")
	}
	iv, err := a.begin()
	if err != nil {
		return err
	}
	defer iv.Close()
	inv, nodes, runID, started := iv.inv, iv.nodes, iv.runID, iv.started
	dir := a.reportDir(runID)
	logs, err := openNodeLogs(filepath.Join(dir, report.DirLogs), nodes)
	if err != nil {
		return err
	}
	defer logs.Close()

	width := 0
	for _, n := range nodes {
		width = max(width, len(n.Name))
	}
	var mu sync.Mutex
	out := func(node string, stream int, line []byte) {
		text := report.SanitizeText(string(line))
		mu.Lock()
		defer mu.Unlock()
		w := a.env.Stdout
		if stream == 2 {
			w = a.env.Stderr
		}
		fmt.Fprintf(w, "%-*s | %s\n", width, node, text)
		logs.write(node, line)
	}
	results := tasks.Exec(ctx, iv.options(a, a.observer()), argv, out)

	rep := a.newReport("exec", runID, inv, started)
	var codes []int
	for i, r := range results {
		n := nodes[i]
		c := report.Check{ID: "exec", Node: n.Name, Status: "pass", Message: "exit status 0"}
		reachable := true
		var ee *transport.ExitError
		switch {
		case r.Err == nil:
		case errors.As(r.Err, &ee):
			c.Status, c.Message = "fail", fmt.Sprintf("exit status %d", ee.Status)
			codes = append(codes, exitFailed)
		case errors.Is(r.Err, transport.ErrUnreachable), errors.Is(r.Err, transport.ErrAuth), errors.Is(r.Err, transport.ErrHostKey):
			reachable = false
			c.ID, c.Status, c.Message = "ssh.connect", "fail", r.Err.Error()
			codes = append(codes, exitUnreachable)
		case ctx.Err() != nil:
			// Cut by Ctrl-C or --timeout, whatever error the node saw.
			c.Status, c.Message = "fail", r.Err.Error()
			codes = append(codes, interruptCode(ctx))
		default:
			c.Status, c.Message = "fail", r.Err.Error()
			codes = append(codes, exitFailed)
		}
		rep.Nodes = append(rep.Nodes, report.Node{Name: n.Name, Address: n.Address, IP: n.IP.String(), Reachable: reachable, Stage: n.Stage, Checks: []report.Check{c}})
		if c.Status != "pass" {
			fmt.Fprintf(a.env.Stderr, "%-*s | prapush: %s\n", width, n.Name, report.SanitizeText(c.Message))
		}
	}
	code := worstExit(codes...)
	a.finish(rep, code)
	if err := a.writeReport(dir, rep); err != nil {
		return err
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// nodeLogs are the per-node log files of a run, written as output arrives.
type nodeLogs struct {
	files map[string]*os.File
}

func openNodeLogs(dir string, nodes []inventory.Node) (*nodeLogs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	l := &nodeLogs{files: map[string]*os.File{}}
	for _, n := range nodes {
		f, err := os.OpenFile(filepath.Join(dir, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("open node log: %w", err)
		}
		l.files[n.Name] = f
	}
	return l, nil
}

func (l *nodeLogs) write(node string, line []byte) {
	if f := l.files[node]; f != nil {
		_, _ = f.Write(append(line, '\n'))
	}
}

func (l *nodeLogs) Close() {
	for _, f := range l.files {
		_ = f.Close()
	}
}
