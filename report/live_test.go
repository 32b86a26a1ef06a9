package report

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prapush/prapush/tasks"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var labNodes = []LiveNode{{"core", 2}, {"mail", 1}, {"files", 1}}

// newTestView returns a terminal-mode view whose frames the test draws by
// calling redraw (no ticker goroutine).
func newTestView(t *testing.T, color bool, width int) (*LiveView, *bytes.Buffer, *fakeClock) {
	t.Helper()
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)}
	v := newLiveView(&buf, labNodes, color, true, clk.now, func() int { return width }, nil, nil)
	return v, &buf, clk
}

func redraw(v *LiveView) {
	v.mu.Lock()
	v.redrawLocked()
	v.mu.Unlock()
}

// ownSequence matches the only escape sequences the view itself writes:
// cursor up, clear to end of line and SGR colours.
var ownSequence = regexp.MustCompile(`\x1b\[(\d+A|K|J|[0-9;]*m)`)

// screen is a minimal terminal: it interprets what the view writes (\r,
// \n, cursor up, clear to end of line; colours are dropped) and fails the
// test on any other control character, so anything a node smuggles in shows.
type screen struct {
	t         *testing.T
	lines     []string
	row, col  int
	maxCursor int // the most the view ever moved up at once
}

func (s *screen) write(p []byte) {
	s.t.Helper()
	in := string(p)
	for len(in) > 0 {
		if loc := ownSequence.FindStringIndex(in); loc != nil && loc[0] == 0 {
			seq := in[:loc[1]]
			switch {
			case strings.HasSuffix(seq, "A"):
				n, _ := strconv.Atoi(seq[2 : len(seq)-1])
				s.maxCursor = max(s.maxCursor, n)
				s.row = max(0, s.row-n)
			case strings.HasSuffix(seq, "J"):
				s.ensure()
				s.lines = s.lines[:s.row+1]
				line := []rune(s.lines[s.row])
				if s.col < len(line) {
					s.lines[s.row] = string(line[:s.col])
				}
			case strings.HasSuffix(seq, "K"):
				s.ensure()
				line := []rune(s.lines[s.row])
				if s.col < len(line) {
					s.lines[s.row] = string(line[:s.col])
				}
			}
			in = in[loc[1]:]
			continue
		}
		r := []rune(in)[0]
		in = in[len(string(r)):]
		switch {
		case r == '\r':
			s.col = 0
		case r == '\n':
			s.row++
			s.col = 0
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e:
			s.t.Fatalf("raw control character %U reached the terminal", r)
		default:
			s.ensure()
			line := []rune(s.lines[s.row])
			for len(line) < s.col {
				line = append(line, ' ')
			}
			if s.col < len(line) {
				line[s.col] = r
			} else {
				line = append(line, r)
			}
			s.lines[s.row] = string(line)
			s.col++
		}
	}
}

func (s *screen) ensure() {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, "")
	}
}

// text is the screen's non-empty lines.
func (s *screen) text() []string {
	var out []string
	for _, l := range s.lines {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestLiveView_RedrawsOneLinePerNodeInPlace(t *testing.T) {
	v, buf, clk := newTestView(t, false, 100)
	scr := &screen{t: t}

	redraw(v)
	first := buf.String()
	if regexp.MustCompile(`\x1b\[\d+A`).MatchString(first) {
		t.Fatalf("first frame moves the cursor up over lines it did not draw: %q", first)
	}
	scr.write(buf.Bytes())
	buf.Reset()
	got := scr.text()
	if len(got) != 3 {
		t.Fatalf("first frame has %d lines, want 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	for i, want := range []string{"core", "mail", "files"} {
		if !strings.HasPrefix(got[i], want) || !strings.Contains(got[i], "waiting") {
			t.Errorf("line %d = %q, want %s waiting", i, got[i], want)
		}
	}
	if !strings.Contains(got[0], "stage 2") || !strings.Contains(got[1], "stage 1") {
		t.Errorf("stages missing: %q", got)
	}

	v.NodeEvent("mail", "claim", "creating the run directory")
	clk.add(3 * time.Second)
	v.NodeEvent("mail", "step", "Restoring mailboxes")
	clk.add(62 * time.Second)
	redraw(v)
	frame := buf.String()
	if !strings.HasPrefix(frame, "\x1b[3A") {
		t.Fatalf("second frame does not start by moving up 3 lines: %q", frame)
	}
	if n := strings.Count(frame, "\n"); n != 3 {
		t.Errorf("second frame writes %d lines, want 3", n)
	}
	scr.write(buf.Bytes())
	buf.Reset()
	got = scr.text()
	if len(got) != 3 {
		t.Fatalf("after a redraw the screen has %d lines, want 3 (redrawn in place):\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, want := range []string{"mail", "1m05s", "running", "step", "Restoring mailboxes"} {
		if !strings.Contains(got[1], want) {
			t.Errorf("mail line %q lacks %q", got[1], want)
		}
	}
	if !strings.Contains(got[0], "waiting") {
		t.Errorf("core line %q: core has not started", got[0])
	}
}

func TestLiveView_FinishedNodeStopsCountingAndShowsItsResult(t *testing.T) {
	v, buf, clk := newTestView(t, false, 120)
	scr := &screen{t: t}
	v.NodeEvent("files", "claim", "creating the run directory")
	clk.add(10 * time.Second)
	v.NodeEvent("files", "step", "Starting BlueMind services OK")
	v.NodeEvent("files", "restore", "success ")
	v.NodeEvent("core", "restore", "failed: step \"Restoring databases\" failed (1)")
	clk.add(5 * time.Minute)
	redraw(v)
	scr.write(buf.Bytes())
	got := scr.text()
	if !strings.Contains(got[2], " 10s ") || !strings.Contains(got[2], "success") {
		t.Errorf("files line %q: want its 10s and success, frozen when it finished", got[2])
	}
	if !strings.Contains(got[0], "failed") {
		t.Errorf("core line %q: want failed", got[0])
	}
}

func TestLiveView_GoesUpOverWrappedLinesWhenTheTerminalShrinks(t *testing.T) {
	var buf bytes.Buffer
	width := 100
	v := newLiveView(&buf, labNodes, false, true, (&fakeClock{}).now, func() int { return width }, nil, nil)
	v.NodeEvent("core", "step", strings.Repeat("x", 200))
	redraw(v)
	first := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if w := displayWidth(strings.TrimSuffix(strings.TrimPrefix(first[0], "\r"), "\x1b[K")); w != 99 {
		t.Fatalf("core line is %d columns at width 100, want 99", w)
	}
	buf.Reset()
	width = 40 // core's 99 columns now take 3 rows, the two others 1 each
	redraw(v)
	if !strings.HasPrefix(buf.String(), "\x1b[5A\r\x1b[J") {
		t.Errorf("after shrinking to 40 columns, want up 5 rows and erase below: %q", buf.String())
	}
	buf.Reset()
	v.NodeEvent("mail", "step", "next")
	redraw(v)
	if !strings.HasPrefix(buf.String(), "\x1b[3A\r") || strings.Contains(buf.String(), "\x1b[J") {
		t.Errorf("same width again: want up 3 rows, no erase: %q", buf.String())
	}
}

func TestLiveView_SkipsAFrameIdenticalToThePreviousOne(t *testing.T) {
	v, buf, _ := newTestView(t, false, 80)
	redraw(v)
	n := buf.Len()
	redraw(v)
	if buf.Len() != n {
		t.Errorf("an unchanged frame was written again: %q", buf.String()[n:])
	}
}

func TestLiveView_CutsLinesToTheTerminalWidth(t *testing.T) {
	for _, color := range []bool{false, true} {
		t.Run(fmt.Sprintf("color=%v", color), func(t *testing.T) {
			v, buf, _ := newTestView(t, color, 40)
			v.NodeEvent("core", "step", strings.Repeat("Restoring a very long step name ", 10))
			v.NodeEvent("mail", "step", strings.Repeat("日本語のステップ", 10))
			redraw(v)
			for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
				visible := ownSequence.ReplaceAllString(line, "")
				visible = strings.TrimPrefix(visible, "\r")
				if w := displayWidth(visible); w > 39 {
					t.Errorf("line is %d columns, want at most 39: %q", w, visible)
				}
				opens := len(regexp.MustCompile(`\x1b\[[1-9][0-9;]*m`).FindAllString(line, -1))
				if resets := strings.Count(line, "\x1b[0m"); opens != resets {
					t.Errorf("%d colours opened, %d reset (one cut in half?): %q", opens, resets, line)
				}
			}
			if color && !strings.Contains(buf.String(), "\x1b[1mcore") {
				t.Errorf("colour on but no SGR sequence: %q", buf.String())
			}
			if !color && strings.Contains(buf.String(), "m\x1b") {
				t.Errorf("colour off but SGR sequences: %q", buf.String())
			}
		})
	}
}

func TestLiveView_EscapesHostileNodeStrings(t *testing.T) {
	hostile := "evil\x1b[2J\x1b]0;pwned\x07\r\nfake line\t\x9b6n\u009b6n\u202eelif.exe"
	for _, terminal := range []bool{true, false} {
		t.Run(fmt.Sprintf("terminal=%v", terminal), func(t *testing.T) {
			var buf bytes.Buffer
			clk := &fakeClock{t: time.Unix(0, 0)}
			v := newLiveView(&buf, []LiveNode{{"core\x1b[31m", 1}}, true, terminal, clk.now, func() int { return 200 }, nil, nil)
			v.NodeEvent("core\x1b[31m", "step", hostile)
			v.NodeEvent(hostile, "restore"+hostile, "failed: "+hostile)
			v.Check(tasks.CheckResult{ID: "x" + hostile, Node: hostile, Status: tasks.Fail, Message: hostile})
			v.Stop()
			out := buf.String()
			scr := &screen{t: t}
			scr.write([]byte(out)) // fails on any raw control character
			stripped := ownSequence.ReplaceAllString(out, "")
			if strings.ContainsAny(stripped, "\x1b\x07\u009b\u202e") || strings.IndexByte(stripped, 0x9b) >= 0 {
				t.Errorf("raw escape from a node in the output: %q", stripped)
			}
			if !strings.Contains(out, `\x1b[2J`) {
				t.Errorf("the escape should be shown, visibly: %q", out)
			}
			wantLines := 3 // core, the hostile node, its check: each event is one line
			if terminal {
				wantLines = 2 // one line per node
			}
			if n := strings.Count(out, "\n"); n != wantLines {
				t.Errorf("%d lines, want %d (a node's newline must not make one): %q", n, wantLines, out)
			}
		})
	}
}

func TestLiveView_AddsALineForANodeItWasNotToldAbout(t *testing.T) {
	v, buf, _ := newTestView(t, false, 100)
	redraw(v)
	v.Check(tasks.CheckResult{ID: "arch.stages", Status: tasks.Warn, Message: "two cores"})
	redraw(v)
	v.NodeEvent("core", "facts", "gathering")
	buf.Reset()
	redraw(v)
	if !strings.HasPrefix(buf.String(), "\x1b[4A") {
		t.Errorf("after a fourth line, want the redraw to go up 4: %q", buf.String())
	}
	if !strings.Contains(buf.String(), "architecture") || !strings.Contains(buf.String(), "WARN") {
		t.Errorf("architecture line missing or without its warning: %q", buf.String())
	}
}

func TestLiveView_VerifyNodeShowsCheckCountsWhenDone(t *testing.T) {
	v, buf, _ := newTestView(t, false, 120)
	v.NodeEvent("core", "connect", "dialling 10.0.0.1")
	v.Check(tasks.CheckResult{ID: "ssh.connect", Node: "core", Status: tasks.Pass})
	v.Check(tasks.CheckResult{ID: "disk.free", Node: "core", Status: tasks.Warn})
	v.NodeEvent("core", "shared", "done")
	redraw(v)
	scr := &screen{t: t}
	scr.write(buf.Bytes())
	got := scr.text()[0]
	for _, want := range []string{"WARN", "1 pass, 1 warn"} {
		if !strings.Contains(got, want) {
			t.Errorf("core line %q lacks %q", got, want)
		}
	}
}

// lineWriter records every Write call.
type lineWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, string(p))
	w.mu.Unlock()
	return len(p), nil
}

func TestLiveView_PlainModeWritesWholeNodePrefixedLines(t *testing.T) {
	var w lineWriter
	v := NewLiveView(&w, labNodes, false, false, nil)
	var wg sync.WaitGroup
	for _, n := range []string{"core", "mail", "files"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				v.NodeEvent(n, "step", fmt.Sprintf("step %d of %s", i, n))
			}
		}()
	}
	wg.Wait()
	v.Stop()
	v.NodeEvent("core", "step", "after stop")
	if len(w.writes) != 600 {
		t.Fatalf("%d writes, want 600 (one per event, none after Stop)", len(w.writes))
	}
	line := regexp.MustCompile(`^(core |mail |files)  step  step \d+ of (\w+)\n$`)
	for _, s := range w.writes {
		m := line.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("write is not one whole node-prefixed line: %q", s)
		}
		if strings.TrimSpace(m[1]) != m[2] {
			t.Fatalf("line of %s prefixed %q", m[2], m[1])
		}
		if strings.Contains(s, "\x1b") {
			t.Fatalf("plain mode wrote an escape sequence: %q", s)
		}
	}
}

func TestLiveView_TickerRedrawsUntilStopThenDrawsTheFinalState(t *testing.T) {
	var w lineWriter
	clk := &fakeClock{t: time.Unix(0, 0)}
	tick := make(chan time.Time) // unbuffered: a send returns once the loop took the tick
	stopped := false
	v := newLiveView(&w, labNodes, false, true, clk.now, func() int { return 80 }, tick, func() { stopped = true })
	tick <- time.Time{}
	v.NodeEvent("core", "step", "Restoring databases")
	tick <- time.Time{} // the first tick's frame is written once this one is taken
	v.NodeEvent("core", "restore", "success ")
	v.Stop()
	if !stopped {
		t.Error("Stop did not stop the ticker")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.writes) < 2 {
		t.Fatalf("%d frames, want at least the ticker's first and Stop's", len(w.writes))
	}
	last := w.writes[len(w.writes)-1]
	if !strings.Contains(last, "success") {
		t.Errorf("Stop's frame %q does not show the final state", last)
	}
	n := len(w.writes)
	v.NodeEvent("core", "step", "late")
	v.Stop()
	if len(w.writes) != n {
		t.Error("the view wrote after Stop")
	}
}

func TestFormatElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0.0s", 9*time.Second + 990*time.Millisecond: "9.9s", 42 * time.Second: "42s", 65 * time.Second: "1m05s", 3723 * time.Second: "1h02m03s",
	} {
		if got := formatElapsed(d); got != want {
			t.Errorf("formatElapsed(%v) = %q, want %q", d, got, want)
		}
	}
}
