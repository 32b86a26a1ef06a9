package report

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/term"

	"github.com/prapush/prapush/tasks"
)

// LiveInterval is the live view's redraw period: often enough that elapsed
// times tick, rarely enough that a slow terminal or a recorded session
// (script, tmux logs) is not flooded.
const LiveInterval = 100 * time.Millisecond

// LiveNode is a node the live view shows from its first frame, before the
// node reports anything.
type LiveNode struct {
	Name  string
	Stage int
}

// LiveView is a tasks.Observer for people watching a run. On a terminal it
// keeps one line per node (name, stage, elapsed time, state or result,
// phase and current step) and redraws them in place at most every
// LiveInterval; elsewhere it prints one node-prefixed line per event. Every
// string that came from a node is passed through SanitizeText, and newlines
// and tabs are flattened, so a node cannot move the cursor or break the
// layout. Call Stop before printing anything else to the same writer.
type LiveView struct {
	w        io.Writer
	color    bool
	terminal bool
	now      func() time.Time
	width    func() int

	mu      sync.Mutex
	nodes   []*liveNode
	byName  map[string]*liveNode
	nameW   int
	widths  []int  // display width of each line of the previous frame
	cols    int    // terminal width the previous frame was drawn for
	last    []byte // the previous frame, to skip identical redraws
	stopped bool

	quit     chan struct{}
	done     chan struct{}
	stopTick func()
	stopOnce sync.Once
}

type liveNode struct {
	name    string
	stage   int
	hasStg  bool
	phase   string
	msg     string
	started time.Time // first event; zero while waiting
	ended   time.Time // set while the node is idle or finished
	result  string    // restore status once known
	pass    int
	warn    int
	fail    int
	skip    int
}

// NewLiveView returns a live view writing to w for nodes, in that order.
// color turns on ANSI colours (the caller decides: --color, NO_COLOR...);
// terminal selects the in-place view (true) or plain lines (false); now is
// the clock (time.Now when nil). The width of the lines is the terminal's
// when w is one, 80 otherwise, read again at every frame.
func NewLiveView(w io.Writer, nodes []LiveNode, color, terminal bool, now func() time.Time) *LiveView {
	var tick <-chan time.Time
	stop := func() {}
	if terminal {
		t := time.NewTicker(LiveInterval)
		tick, stop = t.C, t.Stop
	}
	return newLiveView(w, nodes, color, terminal, now, writerWidth(w), tick, stop)
}

// writerWidth returns the width of the terminal behind w, falling back to
// 80 columns when w is not a terminal or does not say.
func writerWidth(w io.Writer) func() int {
	f, ok := w.(*os.File)
	return func() int {
		if ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
		}
		return 80
	}
}

// newLiveView is NewLiveView with the terminal width and the redraw ticks
// supplied, so that tests drive every frame.
func newLiveView(w io.Writer, nodes []LiveNode, color, terminal bool, now func() time.Time, width func() int, tick <-chan time.Time, stopTick func()) *LiveView {
	if now == nil {
		now = time.Now
	}
	v := &LiveView{
		w: w, color: color, terminal: terminal, now: now, width: width,
		byName: map[string]*liveNode{}, nameW: 4,
		quit: make(chan struct{}), done: make(chan struct{}), stopTick: stopTick,
	}
	for _, n := range nodes {
		v.node(n.Name).stage, v.node(n.Name).hasStg = n.Stage, true
	}
	if !terminal || tick == nil {
		close(v.done)
		return v
	}
	go func() {
		defer close(v.done)
		for {
			select {
			case <-v.quit:
				return
			case <-tick:
				v.mu.Lock()
				if !v.stopped {
					v.redrawLocked()
				}
				v.mu.Unlock()
			}
		}
	}()
	return v
}

// node returns the state of name, adding a line for a node the view was
// not told about (the architecture, say). The caller holds mu or owns v.
func (v *LiveView) node(name string) *liveNode {
	if n, ok := v.byName[name]; ok {
		return n
	}
	n := &liveNode{name: name}
	v.byName[name] = n
	v.nodes = append(v.nodes, n)
	v.nameW = max(v.nameW, displayWidth(flatten(name)))
	return n
}

// NodeEvent implements tasks.Observer.
func (v *LiveView) NodeEvent(node, phase, msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return
	}
	n := v.node(node)
	t := v.now()
	if n.started.IsZero() {
		n.started = t
	}
	n.phase, n.msg = phase, msg
	n.ended = time.Time{}
	if phase == "restore" {
		if st := restoreStatus(msg); st != "" {
			n.result = st
		}
	}
	// A node that finished a phase is idle until its next event: its
	// elapsed time stops, so a finished node does not keep counting.
	if msg == "done" || isFinal(n.result) {
		n.ended = t
	}
	if !v.terminal {
		v.plainLocked(n.name, phase+"  "+msg)
	}
}

// Check implements tasks.Observer.
func (v *LiveView) Check(r tasks.CheckResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return
	}
	name := r.Node
	if name == "" {
		name = "architecture"
	}
	n := v.node(name)
	if n.started.IsZero() {
		n.started = v.now()
		n.ended = n.started
	}
	switch r.Status {
	case tasks.Pass:
		n.pass++
	case tasks.Warn:
		n.warn++
	case tasks.Fail:
		n.fail++
	case tasks.Skip:
		n.skip++
	}
	if !v.terminal {
		line := "check  " + r.ID + " " + string(r.Status)
		if r.Status != tasks.Pass && r.Message != "" {
			line += ": " + r.Message
		}
		v.plainLocked(n.name, line)
	}
}

// Stop ends the redraws, draws the final state (terminal mode) and returns;
// events after Stop are ignored. It may be called more than once.
func (v *LiveView) Stop() {
	v.stopOnce.Do(func() {
		close(v.quit)
		<-v.done
		if v.stopTick != nil {
			v.stopTick()
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.terminal {
			v.redrawLocked()
		}
		v.stopped = true
	})
}

// restoreStatus returns the restore outcome a "restore" event announces
// ("success ...", "failed: ..."), or "".
func restoreStatus(msg string) string {
	for _, st := range []string{tasks.RestoreSuccess, tasks.RestoreFailed, tasks.RestorePartial, tasks.RestoreNotStarted, tasks.RestoreRunning} {
		if msg == st || strings.HasPrefix(msg, st+" ") || strings.HasPrefix(msg, st+":") {
			return st
		}
	}
	return ""
}

func isFinal(result string) bool { return result != "" && result != tasks.RestoreRunning }

// plainLocked writes one whole line: concurrent nodes never interleave
// mid-line because each line is a single Write under mu.
func (v *LiveView) plainLocked(name, text string) {
	line := fmt.Sprintf("%-*s  %s\n", v.nameW, flatten(name), strings.TrimRight(flatten(text), " "))
	_, _ = io.WriteString(v.w, line)
}

// redrawLocked writes one frame: the cursor goes back up over the previous
// frame, every line is rewritten and cleared to its end, all in one Write.
// A frame identical to the previous one is not written again.
func (v *LiveView) redrawLocked() {
	width := v.width()
	if width <= 1 {
		width = 80
	}
	var frame bytes.Buffer
	now := v.now()
	widths := make([]int, 0, len(v.nodes))
	for _, n := range v.nodes {
		line := v.line(n, now, width-1) // the last column would wrap on some terminals
		widths = append(widths, displayWidth(ownSGR.ReplaceAllString(line, "")))
		frame.WriteString("\r")
		frame.WriteString(line)
		frame.WriteString("\x1b[K\n")
	}
	if bytes.Equal(frame.Bytes(), v.last) && width == v.cols {
		return
	}
	var out bytes.Buffer
	if up := v.rowsDrawn(width); up > 0 {
		fmt.Fprintf(&out, "\x1b[%dA\r", up)
		if width < v.cols {
			// The terminal shrank: the old lines may have wrapped, and
			// whatever of them is left below the new frame must go.
			out.WriteString("\x1b[J")
		}
	}
	out.Write(frame.Bytes())
	_, _ = v.w.Write(out.Bytes())
	v.last, v.widths, v.cols = frame.Bytes(), widths, width
}

// rowsDrawn is how many terminal rows the previous frame takes now that
// the terminal is width columns wide: a line wider than that wrapped.
func (v *LiveView) rowsDrawn(width int) int {
	rows := 0
	for _, w := range v.widths {
		rows += max(1, (w+width-1)/width)
	}
	return rows
}

// ownSGR matches the colour sequences render adds.
var ownSGR = regexp.MustCompile("\x1b\\[[0-9;]*m")

// segment is a run of text drawn in one colour.
type segment struct {
	text  string
	color string // ANSI SGR parameters, "" for none
}

const (
	sgrGreen  = "32"
	sgrYellow = "33;1"
	sgrRed    = "31;1"
	sgrFaint  = "2"
	sgrBold   = "1"
	sgrCyan   = "36"
)

// line renders node n as at most width columns.
func (v *LiveView) line(n *liveNode, now time.Time, width int) string {
	stage := "       "
	if n.hasStg {
		stage = fmt.Sprintf("stage %-2d", n.stage)
	}
	elapsed := "-"
	if !n.started.IsZero() {
		end := now
		if !n.ended.IsZero() {
			end = n.ended
		}
		elapsed = formatElapsed(end.Sub(n.started))
	}
	state, color := v.state(n)
	segs := []segment{
		{text: padRight(flatten(n.name), v.nameW), color: sgrBold},
		{text: "  " + stage + " "},
		{text: fmt.Sprintf("%7s", elapsed)},
		{text: "  "},
		{text: padRight(state, 11), color: color},
		{text: " "},
	}
	if n.phase != "" {
		segs = append(segs, segment{text: padRight(flatten(n.phase), 8), color: sgrCyan}, segment{text: " " + flatten(n.msg)})
	}
	if c := checkCounts(n); c != "" {
		segs = append(segs, segment{text: "  [" + c + "]", color: sgrFaint})
	}
	return v.render(segs, width)
}

// state is the word in the state column and its colour.
func (v *LiveView) state(n *liveNode) (string, string) {
	switch {
	case n.result == tasks.RestoreSuccess:
		return n.result, sgrGreen
	case n.result == tasks.RestoreRunning:
		return n.result, sgrYellow
	case n.result != "":
		return n.result, sgrRed
	case n.started.IsZero():
		return "waiting", sgrFaint
	case n.ended.IsZero():
		return "running", ""
	case n.fail > 0:
		return "FAIL", sgrRed
	case n.warn > 0:
		return "WARN", sgrYellow
	case n.pass > 0:
		return "pass", sgrGreen
	}
	return "idle", sgrFaint
}

func checkCounts(n *liveNode) string {
	var parts []string
	for _, c := range []struct {
		k string
		n int
	}{{"pass", n.pass}, {"warn", n.warn}, {"fail", n.fail}, {"skip", n.skip}} {
		if c.n > 0 {
			parts = append(parts, strconv.Itoa(c.n)+" "+c.k)
		}
	}
	return strings.Join(parts, ", ")
}

// render joins segs, cut to width display columns, and adds colours after
// cutting so that an escape sequence is never cut in half.
func (v *LiveView) render(segs []segment, width int) string {
	var b strings.Builder
	left := width
	for _, s := range segs {
		if left <= 0 {
			break
		}
		text, w := cut(s.text, left)
		left -= w
		if text == "" {
			continue
		}
		if v.color && s.color != "" {
			b.WriteString("\x1b[" + s.color + "m" + text + "\x1b[0m")
		} else {
			b.WriteString(text)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// cut returns the longest prefix of s at most width columns wide, and its width.
func cut(s string, width int) (string, int) {
	w := 0
	for i, r := range s {
		rw := runeWidth(r)
		if w+rw > width {
			return s[:i], w
		}
		w += rw
	}
	return s, w
}

// flatten makes a node string one safe terminal line: control characters
// escaped by SanitizeText, newlines and tabs turned into spaces.
func flatten(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(SanitizeText(s))
}

func padRight(s string, width int) string {
	if w := displayWidth(s); w < width {
		return s + strings.Repeat(" ", width-w)
	}
	return s
}

func displayWidth(s string) int {
	w := 0
	for _, r := range s {
		w += runeWidth(r)
	}
	return w
}

// runeWidth is the number of terminal columns r takes: 0 for combining
// marks, 2 for East Asian wide and emoji ranges, 1 otherwise. It is a
// close approximation of wcwidth, enough to keep a line inside the screen.
func runeWidth(r rune) int {
	switch {
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200B:
		return 0
	case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF && r != 0x303F,
		r >= 0xAC00 && r <= 0xD7A3, r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F,
		r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6,
		r >= 0x1F300 && r <= 0x1F64F, r >= 0x1F900 && r <= 0x1F9FF, r >= 0x20000 && r <= 0x3FFFD:
		return 2
	}
	return 1
}

// formatElapsed prints d as 0.4s, 42s, 1m05s or 1h02m03s.
func formatElapsed(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 10:
		return fmt.Sprintf("%d.%ds", s, int64(d/(100*time.Millisecond))%10)
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm%02ds", s/3600, s/60%60, s%60)
}
