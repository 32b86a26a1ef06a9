package tasks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

func nodeWithStepTimeouts(m map[string]time.Duration) inventory.Node {
	return inventory.Node{Name: "n", StepTimeouts: m}
}

// raNode is a transport.Conn that plays a node running the restore
// engine's remote commands: it recognises each command by its text, keeps
// the run's state, and streams a scripted output when followed. Every
// command line is recorded, in order, in the shared journal.
type raNode struct {
	name    string
	menu    []byte // what the script shows first
	body    string // what it prints after a correct answer
	index   int    // the answer that the script accepts
	exit    string // exit status once the body is printed
	journal *journal

	noMenu    bool // the script never shows its menu
	failClaim bool // the claim command fails (exit 1)
	failStop  bool // bmctl stop fails (exit 1)
	barrier   int  // > 0: following goes on once that many are followed
	hang      bool // after the body, the last step spins until killed

	mu         sync.Mutex
	claimed    bool
	started    bool
	answered   chan int
	answeredOK bool
	refused    bool
	exitNow    string
}

type journal struct {
	mu    sync.Mutex
	lines []string // "node: what"

	following, maxFollowing int // scripts followed at once, and the most
}

func (j *journal) add(node, what string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, node+": "+what)
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.lines...)
}

func newRANode(name string, j *journal, index int, body string) *raNode {
	return &raNode{name: name, menu: RenderMenu(FamilyBM4ES, testMenu), body: body, index: index, exit: "0", journal: j, answered: make(chan int, 4)}
}

func rec(key, v string) string {
	return "@@prapush " + key + " " + strconv.Itoa(len(v)) + "\n" + v + "\n"
}

// unwrapSh returns the script of a command line "sh -c '<script>'", and
// whether cmd had that form.
func unwrapSh(cmd string) (string, bool) {
	s, ok := strings.CutPrefix(cmd, "sh -c '")
	if !ok || !strings.HasSuffix(s, "'") {
		return cmd, false
	}
	return strings.ReplaceAll(s[:len(s)-1], `'\''`, "'"), true
}

func (f *raNode) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	// Every engine command must reach the node under sh -c: root's login
	// shell may not be a POSIX sh (zsh does not word-split $x).
	cmd, ok := unwrapSh(cmd)
	if !ok {
		f.journal.add(f.name, "not under sh -c")
		return &transport.ExitError{Status: 127}
	}
	f.mu.Lock()
	switch {
	case strings.Contains(cmd, "sha256sum"):
		f.journal.add(f.name, "verify log")
		n := numberAfter(cmd, "head -c ")
		out := f.output()
		sum := sha256.Sum256(out[:min(n, len(out))])
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, rec("size", strconv.Itoa(len(out)))+rec("sum", hex.EncodeToString(sum[:])+"  -")+rec("end", "ok"))
		return nil
	case strings.HasPrefix(cmd, "exec head -c "):
		f.journal.add(f.name, "read output")
		out := f.output()
		f.mu.Unlock()
		_, _ = stdout.Write(out[:min(numberAfter(cmd, "head -c "), len(out))])
		return nil
	case strings.Contains(cmd, "mkfifo input ctl"):
		f.journal.add(f.name, "claim")
		if f.failClaim {
			f.mu.Unlock()
			return &transport.ExitError{Status: 1, Stderr: "mkdir: read-only file system"}
		}
		f.claimed = true
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, rec("pid", "42")+rec("end", "ok"))
		return nil
	case strings.Contains(cmd, "bmctl stop"):
		f.journal.add(f.name, "bmctl stop")
		if f.failStop {
			f.mu.Unlock()
			return &transport.ExitError{Status: 1, Stderr: "bmctl: cannot stop bm-core"}
		}
	case strings.Contains(cmd, "WORD=go"):
		f.journal.add(f.name, "go")
		f.started = true
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, rec("sent", "1")+rec("end", "ok"))
		return nil
	case strings.Contains(cmd, "WORD=cancel"):
		f.journal.add(f.name, "cancel")
		f.exitNow = "cancelled"
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, rec("sent", "1")+rec("end", "ok"))
		return nil
	case strings.Contains(cmd, `1<>"$RUN/input"`):
		i := strings.Index(cmd, "printf '%s\\n' ")
		n := 0
		for _, c := range cmd[i+len("printf '%s\\n' "):] {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		f.journal.add(f.name, "answer "+strconv.Itoa(n))
		f.mu.Unlock()
		f.answered <- n
		_, _ = io.WriteString(stdout, rec("sent", "1")+rec("end", "ok"))
		return nil
	case strings.Contains(cmd, "kill -TERM"):
		f.journal.add(f.name, "kill")
		f.exitNow = "killed"
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, rec("exit", "killed")+rec("end", "ok"))
		return nil
	case strings.Contains(cmd, "rec missing 1"):
		out := rec("pid", "42")
		if f.exitNow != "" {
			out += rec("exit", f.exitNow)
		} else {
			out += rec("alive", "1")
		}
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, out+rec("end", "ok"))
		return nil
	case strings.HasPrefix(cmd, "exec tail"):
		f.journal.add(f.name, "follow")
		f.mu.Unlock()
		var off int
		if i := strings.Index(cmd, "-c +"); i >= 0 {
			for _, c := range cmd[i+4:] {
				if c < '0' || c > '9' {
					break
				}
				off = off*10 + int(c-'0')
			}
		}
		f.journal.mu.Lock()
		f.journal.following++
		f.journal.maxFollowing = max(f.journal.maxFollowing, f.journal.following)
		f.journal.mu.Unlock()
		for {
			f.journal.mu.Lock()
			ok := f.journal.maxFollowing >= f.barrier
			f.journal.mu.Unlock()
			if ok || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		defer func() {
			f.journal.mu.Lock()
			f.journal.following--
			f.journal.mu.Unlock()
		}()
		return f.follow(ctx, stdout, off-1)
	case strings.Contains(cmd, "time.localtime"):
		f.journal.add(f.name, "render date")
		f.mu.Unlock()
		_, _ = io.WriteString(stdout, "2025-03-14 23:30:02")
		return nil
	default:
		f.journal.add(f.name, "unknown command")
	}
	f.mu.Unlock()
	return nil
}

// numberAfter returns the decimal number that follows prefix in s.
func numberAfter(s, prefix string) int {
	n := 0
	if i := strings.Index(s, prefix); i >= 0 {
		for _, c := range s[i+len(prefix):] {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
	}
	return n
}

// output returns what the script has written so far (the run's output
// file); f.mu is held.
func (f *raNode) output() []byte {
	out := append([]byte(nil), f.menu...)
	if f.answeredOK {
		out = append(out, f.body...)
	}
	if f.refused {
		out = append(out, f.menu...)
	}
	return out
}

// follow plays the script from byte offset: the menu, then the body after
// the right answer, or the menu again after a wrong one and nothing more
// until killed.
func (f *raNode) follow(ctx context.Context, w io.Writer, offset int) error {
	if f.noMenu {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	if offset < len(f.menu) {
		if _, err := w.Write(f.menu[offset:]); err != nil {
			return err
		}
	}
	f.mu.Lock()
	ok := f.answeredOK
	f.mu.Unlock()
	if !ok {
		select {
		case n := <-f.answered:
			if n != f.index {
				f.mu.Lock()
				f.refused = true
				f.mu.Unlock()
				_, _ = w.Write(f.menu)
				<-ctx.Done()
				return context.Cause(ctx)
			}
			f.mu.Lock()
			f.answeredOK = true
			f.mu.Unlock()
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	body := []byte(f.body)
	body = body[min(len(body), max(0, offset-len(f.menu))):]
	for _, chunk := range splitEvery(body, 7) {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	if f.hang {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	f.mu.Lock()
	f.exitNow = f.exit
	f.mu.Unlock()
	return nil
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func (f *raNode) ReadFile(context.Context, string) ([]byte, error) { return nil, fs.ErrNotExist }
func (f *raNode) Upload(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("no upload")
}
func (f *raNode) Close() error { return nil }

var _ transport.Conn = (*raNode)(nil)

// dirLogs is a LogStore in a test directory.
type dirLogs struct{ dir string }

func (l dirLogs) Open(node string) (io.WriteCloser, int64, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, node+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func (l dirLogs) Replay(node string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(l.dir, node+".log"))
}

const healthyBody = "This server is tagged as bm/conf\n\n**** RESTORE COMMON CONFIGURATION ****\n" +
	"\rRestoring BlueMind Node configuration -\rRestoring BlueMind Node configuration OK\n" +
	"\n**** STARTING BLUEMIND SERVICES ****\n" +
	"\rStarting BlueMind Node service -\rStarting BlueMind Node service OK\n" +
	"\rStarting BlueMind services -\rStarting BlueMind services \\\rStarting BlueMind services OK\n"

type restoreFixture struct {
	j     *journal
	nodes []*raNode
	opts  RestoreOptions
}

// newRestoreFixture plans "a" and "b" in stage 1 and "core" in stage 2,
// each expecting menu index 3 with testMenu's third line.
func newRestoreFixture(t *testing.T) *restoreFixture {
	fx := &restoreFixture{j: &journal{}}
	st := &RunState{RunID: "20250101T000000Z-0000abcd", Generation: 312}
	var invNodes []inventory.Node
	var conns []transport.Conn
	for _, n := range []struct {
		name  string
		stage int
	}{{"a", 1}, {"b", 1}, {"core", 2}} {
		fn := newRANode(n.name, fx.j, 3, healthyBody)
		fx.nodes = append(fx.nodes, fn)
		conns = append(conns, fn)
		invNodes = append(invNodes, inventory.Node{Name: n.name, Stage: n.stage, IP: netip.MustParseAddr("10.0.0.1")})
		st.Nodes = append(st.Nodes, NodeRun{Plan: NodePlan{Node: n.name, Stage: n.stage, MenuIndex: 3, MenuLine: testMenu[2],
			Family: FamilyBM4ES, Tags: []string{"bm/conf"}, Script: "/usr/share/bm-node/bm-pra-restore.py", Python: "/usr/bin/python"}})
	}
	fx.opts = RestoreOptions{State: st, Nodes: invNodes, Conns: conns, Logs: dirLogs{t.TempDir()}, MenuTimeout: time.Minute}
	return fx
}

func (fx *restoreFixture) statuses() []string {
	var out []string
	for _, n := range fx.opts.State.Nodes {
		out = append(out, n.Plan.Node+"="+n.Status)
	}
	return out
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}

func TestRestore_HealthyNodesSucceedStageByStage(t *testing.T) {
	fx := newRestoreFixture(t)
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got := strings.Join(fx.statuses(), " ")
	if got != "a=success b=success core=success" {
		t.Fatalf("statuses %s\n%s", got, strings.Join(fx.j.all(), "\n"))
	}
	j := fx.j.all()
	// Every node claimed, then BlueMind stopped everywhere, before any
	// script starts; the core starts only after both stage-1 nodes ended.
	lastStop, firstGo := -1, len(j)
	for i, l := range j {
		if strings.HasSuffix(l, ": claim") && firstGo < len(j) {
			t.Errorf("claim after a go: %v", j)
		}
		if strings.HasSuffix(l, ": bmctl stop") {
			lastStop = max(lastStop, i)
		}
		if strings.HasSuffix(l, ": go") {
			firstGo = min(firstGo, i)
		}
	}
	if lastStop < 0 || lastStop > firstGo {
		t.Errorf("BlueMind not stopped on every node before the first go:\n%s", strings.Join(j, "\n"))
	}
	coreGo := indexOf(j, "core: go")
	for _, n := range []string{"a", "b"} {
		if i := indexOf(j, n+": answer 3"); i < 0 || i > coreGo {
			t.Errorf("%s answered at %d, core started at %d:\n%s", n, i, coreGo, strings.Join(j, "\n"))
		}
	}
	core := fx.opts.State.Nodes[2]
	if len(core.Steps) != 3 || core.Steps[2].Name != "Starting BlueMind services" || core.Steps[2].Status != StepOK {
		t.Errorf("core steps %+v", core.Steps)
	}
}

func TestRestore_WrongMenuLineIsNeverAnswered(t *testing.T) {
	fx := newRestoreFixture(t)
	// Node b shows another generation at the planned index.
	fx.opts.State.Nodes[1].Plan.MenuLine = "3\t2025-03-14 23:30:02\t4.8.2\tstatus: OK"
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	j := fx.j.all()
	for _, l := range j {
		if strings.HasPrefix(l, "b: answer") {
			t.Fatalf("b was answered although its menu line differs:\n%s", strings.Join(j, "\n"))
		}
	}
	if indexOf(j, "b: kill") < 0 {
		t.Errorf("b's process group was not stopped:\n%s", strings.Join(j, "\n"))
	}
	b := fx.opts.State.Nodes[1]
	if b.Status != RestoreFailed || !strings.Contains(b.Reason, "not answered") {
		t.Errorf("b: %s (%s)", b.Status, b.Reason)
	}
	if a := fx.opts.State.Nodes[0]; a.Status != RestoreSuccess {
		t.Errorf("a (same stage) did not finish: %s %s", a.Status, a.Reason)
	}
	if indexOf(j, "core: go") >= 0 || fx.opts.State.Nodes[2].Status != RestoreNotStarted {
		t.Errorf("core started although stage 1 failed:\n%s", strings.Join(j, "\n"))
	}
	if indexOf(j, "core: cancel") < 0 {
		t.Errorf("core's waiting run was not cancelled (its lock stays):\n%s", strings.Join(j, "\n"))
	}
}

func TestRestore_RefusedAnswerStopsTheNode(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.nodes[0].index = 2 // the script refuses 3 and shows its menu again
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	a := fx.opts.State.Nodes[0]
	if a.Status != RestoreFailed || !strings.Contains(a.Reason, "menu again") {
		t.Fatalf("a: %s (%s)", a.Status, a.Reason)
	}
	if indexOf(fx.j.all(), "a: kill") < 0 {
		t.Errorf("a not stopped:\n%s", strings.Join(fx.j.all(), "\n"))
	}
}

func TestRestore_DetachReturnsOnceTheFirstStageIsAnswered(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.opts.Detach = true
	if err := Restore(context.Background(), fx.opts); !errors.Is(err, ErrDetached) {
		t.Fatalf("Restore = %v, want ErrDetached", err)
	}
	j := fx.j.all()
	for _, n := range []string{"a", "b"} {
		if indexOf(j, n+": answer 3") < 0 {
			t.Errorf("%s not answered before detaching", n)
		}
	}
	if indexOf(j, "core: go") >= 0 {
		t.Errorf("core started by a detached run")
	}
	if s := fx.opts.State.Nodes[0].Phase; s != PhaseAnswered {
		t.Errorf("a's phase %q, want %q (attach continues from it)", s, PhaseAnswered)
	}
}

// recordingConn records every command line; it answers nothing.
type recordingConn struct {
	mu    sync.Mutex
	lines []string
}

func (c *recordingConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.mu.Lock()
	c.lines = append(c.lines, cmd)
	c.mu.Unlock()
	if strings.Contains(cmd, "time.localtime") {
		_, _ = io.WriteString(stdout, "2025-03-14 23:30:02")
	}
	return nil
}
func (c *recordingConn) ReadFile(context.Context, string) ([]byte, error) { return nil, fs.ErrNotExist }
func (c *recordingConn) Upload(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("no upload")
}
func (c *recordingConn) Close() error { return nil }

func TestRestore_DryRunSendsNoMutatingCommand(t *testing.T) {
	g, _, err := ParseGeneration(mustRead(t, "../lab/labgen/testdata/generation-312.json"))
	if err != nil {
		t.Fatal(err)
	}
	ip := "192.168.10.11"
	var parts []string
	for _, p := range g.Parts {
		parts = append(parts, ip+"/"+p.Tag+"/"+strconv.Itoa(p.ID))
	}
	rep := &Report{Chosen: g, Nodes: []NodeResult{{
		Node:      inventory.Node{Name: "core", IP: netip.MustParseAddr(ip), Stage: 1},
		Facts:     &Facts{Complete: true, ScriptFamily: FamilyBM4ES, PartDirs: parts},
		MenuIndex: 1,
	}}}
	conn := &recordingConn{}
	mutating := map[string]bool{}
	var mu sync.Mutex
	s := &Sender{DryRun: true, Trace: func(node string, c Command) {
		mu.Lock()
		mutating[posixSh(c.Line)] = c.Mutating
		mu.Unlock()
	}}
	plan, err := BuildPlan(context.Background(), rep, []transport.Conn{conn}, s)
	if err != nil {
		t.Fatalf("BuildPlan: %v", err)
	}
	if len(plan.Nodes) != 1 || plan.Nodes[0].MenuLine == "" || len(plan.Nodes[0].PartIDs) == 0 {
		t.Fatalf("plan %+v", plan.Nodes)
	}
	// Even the engine, driven by a dry-run sender, cannot change a node.
	st := &RunState{RunID: "20250101T000000Z-0000abcd", Generation: g.ID, Nodes: []NodeRun{{Plan: plan.Nodes[0]}}}
	_ = Restore(context.Background(), RestoreOptions{State: st, Nodes: []inventory.Node{rep.Nodes[0].Node}, Conns: []transport.Conn{conn}, Logs: dirLogs{t.TempDir()}, Sender: s})
	if len(mutating) == 0 {
		t.Fatal("no command traced")
	}
	for _, line := range conn.lines {
		m, known := mutating[line]
		if !known || m {
			t.Errorf("dry run sent a mutating (or untraced) command:\n%s", line)
		}
	}
	if !strings.Contains(st.Nodes[0].Reason, ErrDryRunMutation.Error()) {
		t.Errorf("the engine's first change was not refused: %+v", st.Nodes[0])
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

func TestRestore_MenuThatNeverAppearsIsATimeLimit(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.nodes[0].noMenu = true
	fx.opts.MenuTimeout = 50 * time.Millisecond
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	a := fx.opts.State.Nodes[0]
	if !a.TimedOut || a.TimeoutWhat != "menu" || a.Status != RestoreFailed {
		t.Fatalf("a: %+v", a)
	}
	if indexOf(fx.j.all(), "a: kill") < 0 {
		t.Errorf("a not stopped")
	}
	if fx.opts.State.Nodes[2].Status != RestoreNotStarted {
		t.Errorf("core started after a stage-1 time limit")
	}
}

func TestRestore_StepOverItsLimitStopsTheNodeAsPartial(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.nodes[1].body = "This server is tagged as bm/conf\n" +
		"\rRestoring BlueMind Node configuration -\rRestoring BlueMind Node configuration OK\n" +
		"\rWaiting for ES cluster is up -\rWaiting for ES cluster is up \\"
	fx.nodes[1].hang = true
	fx.opts.Nodes[1].StepTimeouts = map[string]time.Duration{"Waiting for ES cluster is up": 50 * time.Millisecond}
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	b := fx.opts.State.Nodes[1]
	if !b.TimedOut || b.TimeoutWhat != "Waiting for ES cluster is up" || b.Status != RestorePartial {
		t.Fatalf("b: %+v", b)
	}
	if b.LastCompleted() != "Restoring BlueMind Node configuration" {
		t.Errorf("last completed %q", b.LastCompleted())
	}
	if last := b.Steps[len(b.Steps)-1]; last.Status != StepStopped {
		t.Errorf("the step over its limit is %q, want stopped", last.Status)
	}
	if a := fx.opts.State.Nodes[0]; a.Status != RestoreSuccess {
		t.Errorf("a (same stage) %s", a.Status)
	}
}

func TestRestore_AttachReplaysTheLocalLogAndFinishes(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.opts.Detach = true
	if err := Restore(context.Background(), fx.opts); !errors.Is(err, ErrDetached) {
		t.Fatalf("Restore = %v, want ErrDetached", err)
	}
	// attach: same state and logs, not detached.
	fx.opts.Detach = false
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := strings.Join(fx.statuses(), " "); got != "a=success b=success core=success" {
		t.Fatalf("statuses %s\n%s", got, strings.Join(fx.j.all(), "\n"))
	}
	for _, n := range []string{"a", "b", "core"} {
		answers := 0
		for _, l := range fx.j.all() {
			if l == n+": answer 3" {
				answers++
			}
		}
		if answers != 1 {
			t.Errorf("%s answered %d times, want once", n, answers)
		}
	}
	log, err := os.ReadFile(filepath.Join(fx.opts.Logs.(dirLogs).dir, "a.log"))
	if err != nil || bytes.Count(log, []byte("Choose backup generation")) != 1 || !bytes.HasSuffix(log, []byte("Starting BlueMind services OK\n")) {
		t.Errorf("a.log is not the output once, whole (%v):\n%q", err, log)
	}
}

func TestRestore_EveryCommandReachesTheNodeUnderPosixSh(t *testing.T) {
	fx := newRestoreFixture(t)
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	// The fake refuses (and journals) any command not wrapped in sh -c.
	for _, l := range fx.j.all() {
		if strings.HasSuffix(l, "not under sh -c") {
			t.Fatalf("a command reached the login shell unwrapped:\n%s", strings.Join(fx.j.all(), "\n"))
		}
	}
	if got := strings.Join(fx.statuses(), " "); got != "a=success b=success core=success" {
		t.Fatalf("statuses %s", got)
	}
}

func TestRestore_AMalformedRunIDSendsNothing(t *testing.T) {
	for _, id := range []string{"", "r", "20250101T000000Z-0000abcd; rm -rf /", "../../etc", "20250101T000000Z-0000ABCD", "20250101T000000Z-0000abcd\n"} {
		fx := newRestoreFixture(t)
		fx.opts.State.RunID = id
		if err := Restore(context.Background(), fx.opts); !errors.Is(err, ErrRunID) {
			t.Errorf("Restore with run id %q = %v, want ErrRunID", id, err)
		}
		if j := fx.j.all(); len(j) != 0 {
			t.Errorf("run id %q: commands sent: %v", id, j)
		}
		if _, err := ReadRunStatus(context.Background(), fx.nodes[0], id, 0); !errors.Is(err, ErrRunID) {
			t.Errorf("ReadRunStatus with run id %q = %v, want ErrRunID", id, err)
		}
	}
}

// assertAbortedBeforeAnyStage checks that no script started, that every
// node that was claimed had its waiting run cancelled (no lock left), and
// that every node is not-started, done, with a reason.
func assertAbortedBeforeAnyStage(t *testing.T, fx *restoreFixture, claimed []string) {
	t.Helper()
	j := fx.j.all()
	for _, l := range j {
		if strings.HasSuffix(l, ": go") || strings.Contains(l, ": answer") {
			t.Errorf("a script started: %q\n%s", l, strings.Join(j, "\n"))
		}
	}
	for _, n := range claimed {
		if indexOf(j, n+": cancel") < 0 {
			t.Errorf("%s's waiting run was not cancelled (its lock stays):\n%s", n, strings.Join(j, "\n"))
		}
	}
	for _, n := range fx.opts.State.Nodes {
		if n.Status != RestoreNotStarted || n.Phase != PhaseDone || n.Reason == "" {
			t.Errorf("%s: status %q phase %q reason %q, want not-started, done, with a reason", n.Plan.Node, n.Status, n.Phase, n.Reason)
		}
	}
}

func TestRestore_BmctlStopFailingOnOneNodeStartsNoStage(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.nodes[1].failStop = true
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	assertAbortedBeforeAnyStage(t, fx, []string{"a", "b", "core"})
	b := fx.opts.State.Nodes[1]
	if !strings.Contains(b.Reason, "bmctl stop") || !strings.Contains(b.Reason, "cannot stop bm-core") {
		t.Errorf("b's reason %q does not say bmctl stop failed", b.Reason)
	}
	if a := fx.opts.State.Nodes[0]; !strings.Contains(a.Reason, "could not be stopped on b") {
		t.Errorf("a's reason %q does not name b", a.Reason)
	}
}

func TestRestore_ANodeThatCannotBeClaimedStartsNoStage(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.nodes[2].failClaim = true
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	assertAbortedBeforeAnyStage(t, fx, []string{"a", "b", "core"})
	for _, l := range fx.j.all() {
		if strings.HasSuffix(l, ": bmctl stop") {
			t.Errorf("BlueMind stopped although a node is not locked: %q", l)
		}
	}
	if core := fx.opts.State.Nodes[2]; !strings.Contains(core.Reason, "read-only file system") {
		t.Errorf("core's reason %q does not say why its claim failed", core.Reason)
	}
	if a := fx.opts.State.Nodes[0]; !strings.Contains(a.Reason, "core could not be claimed") {
		t.Errorf("a's reason %q does not name core", a.Reason)
	}
}

func TestRestore_AttachWithADuplicatedLocalLogKillsNothing(t *testing.T) {
	fx := newRestoreFixture(t)
	fx.opts.Detach = true
	if err := Restore(context.Background(), fx.opts); !errors.Is(err, ErrDetached) {
		t.Fatalf("Restore = %v, want ErrDetached", err)
	}
	// Two followers appended the same output: the local log holds the
	// menu (and its prompt) twice.
	logPath := filepath.Join(fx.opts.Logs.(dirLogs).dir, "a.log")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, append(b, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	fx.opts.Detach = false
	if err := Restore(context.Background(), fx.opts); err != nil {
		t.Fatalf("attach: %v", err)
	}
	j := fx.j.all()
	if indexOf(j, "a: kill") >= 0 {
		t.Fatalf("a healthy restore was killed because of its local log:\n%s", strings.Join(j, "\n"))
	}
	if indexOf(j, "a: read output") < 0 {
		t.Errorf("a's state was not replayed from the node's output:\n%s", strings.Join(j, "\n"))
	}
	if got := strings.Join(fx.statuses(), " "); got != "a=success b=success core=success" {
		t.Fatalf("statuses %s\n%s", got, strings.Join(j, "\n"))
	}
	answers := 0
	for _, l := range j {
		if l == "a: answer 3" {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("a answered %d times, want once", answers)
	}
}

func TestRestore_AttachKeepsTheTimeLimitOfTheRunningStep(t *testing.T) {
	fx := newRestoreFixture(t)
	spin := "This server is tagged as bm/conf\n\rWaiting for ES cluster is up -\rWaiting for ES cluster is up \\"
	b := fx.nodes[1]
	b.body, b.hang, b.answeredOK = spin, true, true
	started := time.Now().UTC().Add(-time.Hour) // over the step's 30 min default
	st := fx.opts.State
	for _, k := range []int{0, 2} {
		st.Nodes[k].Phase, st.Nodes[k].Status = PhaseDone, RestoreSuccess
	}
	st.Nodes[1].Phase, st.Nodes[1].Status = PhaseAnswered, RestoreRunning
	st.Nodes[1].Steps = []StepRecord{{Name: "Waiting for ES cluster is up", Status: StepRunning, StartedAt: started}}
	logPath := filepath.Join(fx.opts.Logs.(dirLogs).dir, "b.log")
	if err := os.WriteFile(logPath, append(append([]byte(nil), b.menu...), spin...), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the limit the follow would never end: bound the test.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Restore(ctx, fx.opts); err != nil {
		t.Fatalf("attach: %v", err)
	}
	n := st.Nodes[1]
	if !n.TimedOut || n.TimeoutWhat != "Waiting for ES cluster is up" {
		t.Fatalf("b: timed out %v (%q), %s: %s", n.TimedOut, n.TimeoutWhat, n.Status, n.Reason)
	}
	if indexOf(fx.j.all(), "b: kill") < 0 {
		t.Errorf("b not stopped:\n%s", strings.Join(fx.j.all(), "\n"))
	}
	if len(n.Steps) == 0 || !n.Steps[0].StartedAt.Equal(started) || n.Steps[0].Status != StepStopped {
		t.Errorf("b steps %+v: want the step stopped, with its recorded start", n.Steps)
	}
}

func TestRestore_ParallelBoundsTheNodesOfAStageRunAtOnce(t *testing.T) {
	for _, tc := range []struct{ parallel, want int }{{0, 2}, {1, 1}} {
		fx := newRestoreFixture(t)
		fx.opts.Parallel = tc.parallel
		// Unbounded, a and b must be followed together: each waits for
		// the other (a run that serialised them would hit ctx's limit).
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if tc.parallel == 0 {
			fx.nodes[0].barrier, fx.nodes[1].barrier = 2, 2
		}
		if err := Restore(ctx, fx.opts); err != nil {
			t.Fatalf("parallel %d: Restore: %v\n%s", tc.parallel, err, strings.Join(fx.j.all(), "\n"))
		}
		if got := strings.Join(fx.statuses(), " "); got != "a=success b=success core=success" {
			t.Fatalf("parallel %d: statuses %s", tc.parallel, got)
		}
		fx.j.mu.Lock()
		most := fx.j.maxFollowing
		fx.j.mu.Unlock()
		if most != tc.want {
			t.Errorf("parallel %d: %d scripts followed at once, want %d", tc.parallel, most, tc.want)
		}
	}
}
