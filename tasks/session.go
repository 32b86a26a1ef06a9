package tasks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/prapush/prapush/transport"
)

// factsSession is the one SSH session of a node's facts script in verify:
// the script writes its facts and its probe, announces "phase1", waits on
// stdin for the other probes' names, looks for them, announces "phase2",
// waits for a last line, removes its probe and ends. One session per node
// (instead of one per phase) is what makes verify cost about one command
// per node; stdin is the barrier between the nodes.
type factsSession struct {
	ctx    context.Context
	stdin  *io.PipeWriter
	out    *recordWriter
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's error, set before done is closed
}

// startFacts runs script on c in the background.
func startFacts(ctx context.Context, c transport.Conn, script string) *factsSession {
	ctx, cancel := context.WithCancelCause(ctx)
	pr, pw := io.Pipe()
	s := &factsSession{ctx: ctx, stdin: pw, out: newRecordWriter(), cancel: cancel, done: make(chan struct{})}
	go func() {
		err := c.Run(ctx, script, pr, s.out, nil)
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		// Unblock a script still reading, and writers of stdin.
		_ = pr.CloseWithError(io.ErrClosedPipe)
		s.err = err
		close(s.done)
	}()
	return s
}

// wait waits until the output holds one of the marker records keys, the
// session ended, or limit passed (then the session is stopped with
// ErrTimeout). It reports whether keys[0] was seen. Waiting for "end" too
// matters: Run may not return before stdin is closed (os/exec, which the
// tests' local connections use, waits for its stdin copy), so an ended
// script is known by its last record, not by Run.
func (s *factsSession) wait(limit time.Duration, what string, keys ...string) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		changed := s.out.changed()
		for _, k := range keys {
			if s.out.seen(k) {
				return s.out.seen(keys[0])
			}
		}
		select {
		case <-changed:
		case <-s.done:
			return s.out.seen(keys[0])
		case <-s.ctx.Done():
			// Run may only return once stdin is closed.
			_ = s.stdin.Close()
			<-s.done
			return s.out.seen(keys[0])
		case <-t.C:
			s.cancel(fmt.Errorf("%s: no answer within %v: %w", what, limit, ErrTimeout))
			_ = s.stdin.Close()
			<-s.done
			return false
		}
	}
}

// send writes one line to the script's stdin; a session that ended makes
// it a no-op (the write fails on the closed pipe).
func (s *factsSession) send(line string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(s.stdin, line+"\n")
	}()
	select {
	case <-done:
	case <-s.done:
	}
}

// finish closes stdin and waits for the end of the session.
func (s *factsSession) finish() ([]byte, error) {
	_ = s.stdin.Close()
	<-s.done
	return s.out.bytes(), s.err
}

// recordWriter keeps the output and signals each record key as soon as
// the record is complete.
type recordWriter struct {
	mu      sync.Mutex
	buf     []byte
	pos     int // start of the first record not yet complete
	markers map[string]chan struct{}
	news    chan struct{} // closed (and replaced) at every complete record
}

func newRecordWriter() *recordWriter {
	return &recordWriter{markers: map[string]chan struct{}{}, news: make(chan struct{})}
}

func (w *recordWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		key, next, ok := nextRecord(w.buf, w.pos)
		if !ok {
			break
		}
		w.pos = next
		if ch := w.channel(key); !isClosed(ch) {
			close(ch)
		}
		close(w.news)
		w.news = make(chan struct{})
	}
	return len(p), nil
}

// channel returns the marker channel of key (w.mu held).
func (w *recordWriter) channel(key string) chan struct{} {
	ch, ok := w.markers[key]
	if !ok {
		ch = make(chan struct{})
		w.markers[key] = ch
	}
	return ch
}

// changed returns a channel closed at the next complete record.
func (w *recordWriter) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.news
}

func (w *recordWriter) seen(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return isClosed(w.markers[key])
}

func (w *recordWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf)
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// nextRecord finds the record starting at or after pos (as ParseRecords
// frames them) and returns its key and the offset after it; ok is false
// until the record is complete.
func nextRecord(b []byte, pos int) (key string, next int, ok bool) {
	for {
		i := bytes.Index(b[pos:], []byte(recordMagic))
		if i < 0 {
			return "", 0, false
		}
		start := pos + i
		if start > 0 && b[start-1] != '\n' {
			pos = start + len(recordMagic)
			continue
		}
		h := start + len(recordMagic)
		nl := bytes.IndexByte(b[h:], '\n')
		if nl < 0 {
			return "", 0, false
		}
		k, lenStr, found := bytes.Cut(b[h:h+nl], []byte(" "))
		n, err := strconv.Atoi(string(lenStr))
		if !found || err != nil || n < 0 {
			pos = h
			continue
		}
		end := h + nl + 1 + n
		if end >= len(b) {
			return "", 0, false
		}
		return string(k), end + 1, true
	}
}
