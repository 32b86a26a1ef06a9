package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prapush/prapush/transport"
)

// Output streams of Exec's callback.
const (
	Stdout = 1
	Stderr = 2
)

// ExecResult is the outcome of an ad-hoc command on one node.
type ExecResult struct {
	Node       string
	ExitStatus int   // 0 on success; -1 when it did not run or was killed
	Err        error // dial error, *transport.ExitError, or a transport error
}

// Exec runs cmd on every selected node (at most Parallel at once) and calls
// out for every complete line of output, without its newline; a last line
// without a newline is delivered when the command ends. Calls to out are
// serialised, so out need not be safe for concurrent use. A single-element
// cmd is a shell command line run as is; several elements are quoted into
// one command. Results are indexed like opts.Nodes.
func Exec(ctx context.Context, opts Options, cmd []string, out func(node string, stream int, line []byte)) []ExecResult {
	line := ""
	if len(cmd) == 1 {
		line = cmd[0]
	} else {
		line = transport.Quote(cmd...)
	}
	var mu sync.Mutex
	emit := func(node string, stream int, l []byte) {
		if out == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		out(node, stream, l)
	}
	f, results := connect(ctx, opts, false, nil)
	defer f.Close()
	res := make([]ExecResult, len(opts.Nodes))
	obs := opts.observer()
	forEach(ctx, len(opts.Nodes), opts.Parallel, func(ctx context.Context, i int) {
		name := opts.Nodes[i].Name
		res[i] = ExecResult{Node: name, ExitStatus: -1}
		c := f.conns[i]
		if c == nil {
			res[i].Err = results[i].DialErr
			return
		}
		obs.NodeEvent(name, "exec", "running")
		so := &lineWriter{emit: func(l []byte) { emit(name, Stdout, l) }}
		se := &lineWriter{emit: func(l []byte) { emit(name, Stderr, l) }}
		err := c.Run(ctx, line, nil, so, se)
		so.Flush()
		se.Flush()
		res[i].Err = err
		var ee *transport.ExitError
		switch {
		case err == nil:
			res[i].ExitStatus = 0
		case errors.As(err, &ee):
			res[i].ExitStatus = ee.Status
		default:
			res[i].Err = fmt.Errorf("run on %s: %w", name, err)
		}
		obs.NodeEvent(name, "exec", "done")
	})
	return res
}

// lineWriter buffers writes and emits whole lines. It is safe for
// concurrent Writes (a transport may copy from one goroutine per stream,
// but nothing promises one).
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func([]byte)
}

// maxLine bounds the buffer: a longer line is emitted in pieces rather than
// growing memory without limit.
const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(bytes.Clone(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		w.emit(bytes.Clone(w.buf[:maxLine]))
		w.buf = w.buf[maxLine:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

// Flush emits what remains as a last line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(bytes.Clone(w.buf))
		w.buf = nil
	}
}
