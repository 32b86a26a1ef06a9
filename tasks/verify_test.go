package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// localFleet is a set of fake nodes run by localConn on this machine, all
// on one shared store unless a node is given its own.
type localFleet struct {
	inv      *inventory.Inventory
	store    string
	mu       sync.Mutex
	conns    map[string]*localConn
	commands map[string]*[]string
	rewrites map[string]*strings.Replacer
	pairs    map[string][]string
	down     map[string]error // dial errors
}

const (
	phEtc   = "/PRAPUSH_ETC"
	phRuns  = "/PRAPUSH_RUNS"
	phSpool = "/PRAPUSH_SPOOL"
)

// placeholderRoots are rewritten per node by localFleet. Proc is no
// directory: the processes of this machine are not the fake nodes'.
var placeholderRoots = scriptRoots{Store: "/PRAPUSH_STORE", Etc: phEtc, Runs: phRuns, Spool: phSpool, Proc: "/PRAPUSH_NO_PROC", IPs: "PRAPUSH_IPS"}

func newLocalFleet(t testing.TB, nodes ...inventory.Node) *localFleet {
	t.Helper()
	dir := t.TempDir()
	lf := &localFleet{
		store:    makeStore(t, dir),
		conns:    map[string]*localConn{},
		commands: map[string]*[]string{},
		rewrites: map[string]*strings.Replacer{},
		pairs:    map[string][]string{},
		down:     map[string]error{},
		inv:      &inventory.Inventory{Architecture: testArch()},
	}
	for i := range nodes {
		nd := makeNode(t, filepath.Join(dir, nodes[i].Name))
		nodes[i].Python, nodes[i].RestoreScript = nd.Python, nd.Script
		lf.setNode(nodes[i].Name, nd, lf.store, "127.0.0.1,"+nodes[i].IP.String())
	}
	lf.inv.Nodes = nodes
	return lf
}

func (lf *localFleet) setNode(name string, nd fakeNode, store, ips string) {
	lf.pairs[name] = []string{"/PRAPUSH_STORE", store, phEtc, nd.Etc, phRuns, nd.Runs, phSpool, nd.Spool, "PRAPUSH_IPS", ips}
	lf.rewrites[name] = strings.NewReplacer(lf.pairs[name]...)
}

func (lf *localFleet) dial(ctx context.Context, n inventory.Node) (transport.Conn, error) {
	if err := lf.down[n.Name]; err != nil {
		return nil, fmt.Errorf("dial %s: %w", n.Name, err)
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	cmds := &[]string{}
	c := &localConn{rewrite: lf.rewrites[n.Name], commands: cmds}
	lf.conns[n.Name], lf.commands[n.Name] = c, cmds
	return c, nil
}

func (lf *localFleet) opts(gen string) Options {
	return Options{Inventory: lf.inv, Nodes: lf.inv.Nodes, Dial: lf.dial, Generation: gen, RunID: "20260101T000000-ab12"}
}

func findCheck(t testing.TB, checks []CheckResult, id string) CheckResult {
	t.Helper()
	for _, c := range checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %s in %v", id, checks)
	return CheckResult{}
}

func TestVerify_UnreachableNodeIsAResultAndProbesRoundTrip(t *testing.T) {
	lf := newLocalFleet(t,
		testNode("core", "192.168.10.11", true, "bm/core"),
		testNode("data", "192.168.10.12", false, "mail/imap"),
		testNode("down", "192.168.10.13", false))
	lf.down["down"] = transport.ErrUnreachable
	rep, err := verify(context.Background(), lf.opts("latest"), placeholderRoots, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Nodes) != 3 || rep.Nodes[2].Node.Name != "down" {
		t.Fatalf("results not in inventory order: %v", rep.Nodes)
	}
	want := 2 + len(factsChecks)
	for _, r := range rep.Nodes {
		if len(r.Checks) != want {
			t.Errorf("%s: %d checks, want %d", r.Node.Name, len(r.Checks), want)
		}
		if r.Checks[0].ID != CheckSSHConnect || r.Checks[1].ID != CheckSSHPrivilege || r.Checks[len(r.Checks)-1].ID != CheckGenerationParts {
			t.Errorf("%s: checks out of the spec's order: %s, %s ... %s", r.Node.Name, r.Checks[0].ID, r.Checks[1].ID, r.Checks[len(r.Checks)-1].ID)
		}
	}
	down := rep.Nodes[2]
	if down.Reachable || !errors.Is(down.DialErr, transport.ErrUnreachable) || down.Facts != nil {
		t.Errorf("down: reachable %v err %v", down.Reachable, down.DialErr)
	}
	if c := down.Checks[0]; c.Status != Fail || !strings.Contains(c.Message, "unreachable") {
		t.Errorf("down ssh.connect: %+v", c)
	}
	for _, c := range down.Checks[1:] {
		if c.Status != Skip {
			t.Errorf("down %s: %s, want skip", c.ID, c.Status)
		}
	}
	for _, r := range rep.Nodes[:2] {
		for _, id := range []string{CheckSSHConnect, CheckSSHPrivilege, CheckBackupPresent, CheckBackupWritable, CheckBackupShared, CheckHostIP, CheckHostBackupData, CheckGenerationParts, CheckRestoreIdle, CheckBackupIdle} {
			if c := findCheck(t, r.Checks, id); c.Status != Pass {
				t.Errorf("%s %s: %s %q", r.Node.Name, id, c.Status, c.Message)
			}
		}
		if c := findCheck(t, r.Checks, CheckBackupShared); c.Message != "sees the probes of the other 1 node(s)" {
			t.Errorf("%s backup.shared: %q", r.Node.Name, c.Message)
		}
		if r.MenuIndex != 1 || !strings.HasPrefix(r.MenuLine, "1\t2022-03-14 21:00:02\t4.8.2\tstatus: OK") {
			t.Errorf("%s: menu %d %q", r.Node.Name, r.MenuIndex, r.MenuLine)
		}
		if n := len(*lf.commands[r.Node.Name]); n != 1 {
			t.Errorf("%s: %d commands, want 1 (facts and probe phases in one session)", r.Node.Name, n)
		}
		if !lf.conns[r.Node.Name].closed {
			t.Errorf("%s: connection left open", r.Node.Name)
		}
	}
	if rep.Chosen == nil || rep.Chosen.ID != 312 {
		t.Errorf("chosen %+v, want 312", rep.Chosen)
	}
	for _, c := range rep.Architecture {
		if c.Status != Pass {
			t.Errorf("%s: %s %q", c.ID, c.Status, c.Message)
		}
	}
	left, _ := os.ReadDir(filepath.Join(lf.store, "temp"))
	if len(left) != 0 {
		t.Errorf("probes left in temp/: %v", left)
	}
}

func TestVerify_NodeOnAnotherStoreFailsBackupShared(t *testing.T) {
	lf := newLocalFleet(t,
		testNode("core", "192.168.10.11", true),
		testNode("data", "192.168.10.12", false))
	other := makeStore(t, t.TempDir())
	nd := makeNode(t, t.TempDir())
	lf.inv.Nodes[1].Python, lf.inv.Nodes[1].RestoreScript = nd.Python, nd.Script
	lf.setNode("data", nd, other, "192.168.10.12")
	rep, err := verify(context.Background(), lf.opts(""), placeholderRoots, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Nodes {
		c := findCheck(t, r.Checks, CheckBackupShared)
		if c.Status != Fail {
			t.Errorf("%s backup.shared: %s %q, want fail", r.Node.Name, c.Status, c.Message)
		}
		if c := findCheck(t, r.Checks, CheckGenerationParts); c.Status != Skip {
			t.Errorf("%s generation.parts with no generation chosen: %s", r.Node.Name, c.Status)
		}
	}
	for _, s := range []string{lf.store, other} {
		if left, _ := os.ReadDir(filepath.Join(s, "temp")); len(left) != 0 {
			t.Errorf("probes left in %s: %v", s, left)
		}
	}
}

func TestVerify_NeverSendsInventoryValuesUnquoted(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true))
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	o := lf.opts("")
	o.RunID = "x$(touch " + marker + ")"
	o.Nodes[0].Python = "/bin/$(touch " + marker + ")"
	if _, err := verify(context.Background(), o, placeholderRoots, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("an option value was executed")
	}
}

func TestConnect_PrivilegeFromIDAndDialErrors(t *testing.T) {
	lf := newLocalFleet(t,
		testNode("a", "10.0.0.1", false),
		testNode("sudo", "10.0.0.2", false),
		testNode("key", "10.0.0.3", false))
	lf.down["sudo"] = transport.ErrPrivilege
	lf.down["key"] = transport.ErrHostKey
	f, res := Connect(context.Background(), lf.opts(""))
	defer f.Close()
	got := func(i int) string { return string(res[i].Checks[0].Status) + "/" + string(res[i].Checks[1].Status) }
	wantA := "pass/pass"
	if os.Getuid() != 0 {
		wantA = "pass/fail"
	}
	if got(0) != wantA || got(1) != "pass/fail" || got(2) != "fail/skip" {
		t.Errorf("got %s %s %s", got(0), got(1), got(2))
	}
	if !res[1].Reachable || res[2].Reachable || f.Conn(0) == nil || f.Conn(2) != nil {
		t.Errorf("reachable: %v %v", res[1].Reachable, res[2].Reachable)
	}
}

func TestGenerations_SummaryAcrossNodes(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true), testNode("data", "192.168.10.12", false))
	f, _ := connect(context.Background(), lf.opts(""), false, nil)
	gatherFacts(context.Background(), f, placeholderRoots, "")
	f.Close()
	s := summarize(f.results)
	if len(s.Common) != 2 || len(s.Restorable) != 1 || s.Restorable[0] != 312 || len(s.PerNode) != 2 {
		t.Errorf("summary %+v", s)
	}
	if g := s.PerNode[1].Generations[0]; g.ID != 312 || g.Parts != 9 || g.LocalTime != "2022-03-14 21:00:02" || g.SHA256 == "" {
		t.Errorf("view %+v", g)
	}
}

func TestExec_LinesPerNodeNeverPartial(t *testing.T) {
	lf := newLocalFleet(t, testNode("a", "10.0.0.1", false), testNode("b", "10.0.0.2", false), testNode("c", "10.0.0.3", false))
	lf.down["c"] = transport.ErrAuth
	var mu sync.Mutex
	lines := map[string][]string{}
	out := func(node string, stream int, line []byte) {
		mu.Lock() // Exec promises serial calls; the lock makes the race detector judge that.
		defer mu.Unlock()
		lines[node] = append(lines[node], fmt.Sprintf("%d:%s", stream, line))
	}
	o := lf.opts("")
	res := Exec(context.Background(), o, []string{`printf 'one\ntw'; sleep 0.05; printf 'o\nlast'; echo err >&2; exit 3`}, out)
	for _, n := range []string{"a", "b"} {
		var stdout, stderr []string
		for _, l := range lines[n] {
			if s, ok := strings.CutPrefix(l, "1:"); ok {
				stdout = append(stdout, s)
			} else {
				stderr = append(stderr, l)
			}
		}
		if strings.Join(stdout, "|") != "one|two|last" || strings.Join(stderr, "|") != "2:err" {
			t.Errorf("%s: stdout %q stderr %q", n, stdout, stderr)
		}
	}
	if res[0].ExitStatus != 3 || res[1].Node != "b" || res[2].ExitStatus != -1 || !errors.Is(res[2].Err, transport.ErrAuth) {
		t.Errorf("results %+v", res)
	}
	res = Exec(context.Background(), o, []string{"echo", "a b", "$HOME"}, out)
	if res[0].ExitStatus != 0 || lines["a"][len(lines["a"])-1] != "1:a b $HOME" {
		t.Errorf("argv not quoted: %v %v", res[0], lines["a"])
	}
}

func BenchmarkVerify(b *testing.B) {
	const n = 100
	var nodes []inventory.Node
	for i := range n {
		nodes = append(nodes, testNode(fmt.Sprintf("n%03d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), i == 0))
	}
	lf := newLocalFleet(b, nodes...)
	o := lf.opts("latest")
	o.Parallel = 16
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := verify(context.Background(), o, placeholderRoots, 1)
		if err != nil || len(rep.Nodes) != n {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/node")
}

// BenchmarkFactsToChecks measures the Go side of one node: parsing its
// captured facts and evaluating every check (no shell, no SSH).
func BenchmarkFactsToChecks(b *testing.B) {
	raw, err := os.ReadFile("testdata/facts/captured-core.out")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := ParseFacts(raw)
		if err != nil {
			b.Fatal(err)
		}
		f.ProbeUID, f.ProbeRemoved = 0, true
		all := []NodeResult{{Node: testNode("core", "192.168.10.11", true), Facts: f}}
		gen := resolveGeneration("latest", summarize(all))
		runNodeChecks(testArch(), all, 0, gen, NopObserver{})
	}
}

func TestVerify_CancelledStillReturnsAReport(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true))
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("operator pressed Ctrl-C")
	cancel(cause)
	rep, err := verify(ctx, lf.opts(""), placeholderRoots, 1)
	if !errors.Is(err, cause) || rep == nil || len(rep.Nodes) != 1 {
		t.Fatalf("rep %v err %v", rep, err)
	}
}

func TestFleetVerify_ReusesConnectionsAndStaysOpen(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true), testNode("data", "192.168.10.12", false))
	f, res := Connect(context.Background(), lf.opts("312"))
	defer f.Close()
	if len(res[0].Checks) != 2 {
		t.Fatalf("connect checks %v", res[0].Checks)
	}
	for range 2 {
		rep, err := f.verify(context.Background(), placeholderRoots, 1, make([]*factsSession, len(f.conns)))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(rep.Nodes[0].Checks); n != 2+len(factsChecks) {
			t.Errorf("%d checks (ssh.privilege once), want %d", n, 2+len(factsChecks))
		}
		if c := findCheck(t, rep.Nodes[1].Checks, CheckGenerationParts); c.Status != Pass {
			t.Errorf("generation.parts %s %q", c.Status, c.Message)
		}
	}
	if lf.conns["core"].closed || f.Conns()[0] != transport.Conn(lf.conns["core"]) {
		t.Error("Fleet.Verify closed or replaced the connection")
	}
	if n := len(*lf.commands["core"]); n != 1+2 {
		t.Errorf("%d commands on one connection, want 3 (id -u, then 1 per verify)", n)
	}
}

// hangConn never answers: a node whose store is a dead hard NFS mount.
type hangConn struct{ localConn }

func (c *hangConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	<-ctx.Done()
	return fmt.Errorf("run: %w", transport.ErrUnreachable)
}

func TestVerify_HungNodeTimesOutAlone(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true), testNode("hung", "192.168.10.12", false))
	o := lf.opts("")
	o.RoundTimeout = 300 * time.Millisecond
	o.Dial = func(ctx context.Context, n inventory.Node) (transport.Conn, error) {
		if n.Name == "hung" {
			return &hangConn{}, nil
		}
		return lf.dial(ctx, n)
	}
	rep, err := verify(context.Background(), o, placeholderRoots, 1)
	if err != nil {
		t.Fatal(err)
	}
	hung := rep.Nodes[1]
	if !errors.Is(hung.FactsErr, ErrTimeout) {
		t.Fatalf("FactsErr = %v, want ErrTimeout", hung.FactsErr)
	}
	if c := findCheck(t, hung.Checks, CheckBackupPresent); c.Status != Skip || !strings.Contains(c.Message, "time limit") {
		t.Errorf("hung backup.present: %s %q", c.Status, c.Message)
	}
	if c := findCheck(t, rep.Nodes[0].Checks, CheckBackupPresent); c.Status != Pass {
		t.Errorf("the other node must be unaffected: %s %q", c.Status, c.Message)
	}
}

// countObserver counts what Verify reports, from many goroutines.
type countObserver struct {
	mu     sync.Mutex
	checks map[string]int
	phases map[string]int
}

func (o *countObserver) NodeEvent(node, phase, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.phases[phase]++
}

func (o *countObserver) Check(r CheckResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.checks[r.Node]++
}

func TestVerify_ObserverSeesEveryCheckOnce(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true), testNode("data", "192.168.10.12", false), testNode("down", "192.168.10.13", false))
	lf.down["down"] = transport.ErrHostKey
	obs := &countObserver{checks: map[string]int{}, phases: map[string]int{}}
	o := lf.opts("312")
	o.Observer, o.Parallel = obs, 1
	rep, err := verify(context.Background(), o, placeholderRoots, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Nodes {
		if obs.checks[r.Node.Name] != len(r.Checks) {
			t.Errorf("%s: observed %d checks, result has %d", r.Node.Name, obs.checks[r.Node.Name], len(r.Checks))
		}
	}
	if obs.checks[""] != len(rep.Architecture) || obs.phases["connect"] != 6 || obs.phases["facts"] != 4 {
		t.Errorf("architecture %d, phases %v", obs.checks[""], obs.phases)
	}
}

// TestVerify_MenuDateRenderedByTheNode gives one node a TZ its /etc/localtime
// does not say: the menu line must carry the node's own rendering, as the
// script's localtime would. Only a restore plan asks for it (NodeDates).
func TestVerify_MenuDateRenderedByTheNode(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true))
	o := lf.opts("312")
	o.NodeDates = true
	o.Dial = func(ctx context.Context, n inventory.Node) (transport.Conn, error) {
		return &localConn{rewrite: lf.rewrites[n.Name], env: []string{"TZ=Asia/Tokyo"}}, nil
	}
	rep, err := verify(context.Background(), o, placeholderRoots, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Nodes[0].MenuLine, "1\t2022-03-15 06:00:02\t4.8.2\tstatus: OK"; got != want {
		t.Errorf("menu line %q, want %q", got, want)
	}
}

// TestVerify_NodeDyingBetweenPhasesDoesNotHangTheOthers makes one node's
// script end right after writing its probe (a crash, a lost session): the
// others still finish, and the dead node's results say what is unknown.
func TestVerify_NodeDyingBetweenPhasesDoesNotHangTheOthers(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true), testNode("dies", "192.168.10.12", false))
	lf.rewrites["dies"] = strings.NewReplacer(append(rewritePairs(lf, "dies"), "if read -r others; then", "exit 0; if read -r others; then")...)
	o := lf.opts("")
	o.RoundTimeout = 500 * time.Millisecond
	rep, err := verify(context.Background(), o, placeholderRoots, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := findCheck(t, rep.Nodes[0].Checks, CheckBackupShared); c.Status != Pass {
		t.Errorf("core backup.shared: %s %q", c.Status, c.Message)
	}
	if c := findCheck(t, rep.Nodes[0].Checks, CheckBackupWritable); c.Status != Pass {
		t.Errorf("core backup.writable: %s %q", c.Status, c.Message)
	}
	dies := rep.Nodes[1]
	if !errors.Is(dies.FactsErr, ErrTimeout) && dies.FactsErr == nil {
		t.Errorf("dies: FactsErr %v", dies.FactsErr)
	}
	for _, id := range []string{CheckBackupShared, CheckBackupWritable} {
		if c := findCheck(t, dies.Checks, id); c.Status == Pass {
			t.Errorf("dies %s passed: %q", id, c.Message)
		}
	}
}

// rewritePairs returns the placeholder rewrites of node name.
func rewritePairs(lf *localFleet, name string) []string {
	return lf.pairs[name]
}

// TestVerify_CancelDuringTheProbePhaseReturns cancels ctx while the nodes
// wait at the probe barrier (one node never reaches it).
func TestVerify_CancelDuringTheProbePhaseReturns(t *testing.T) {
	lf := newLocalFleet(t, testNode("core", "192.168.10.11", true), testNode("slow", "192.168.10.12", false))
	lf.rewrites["slow"] = strings.NewReplacer(append(rewritePairs(lf, "slow"), "rec phase1 ok", "sleep 30; rec phase1 ok")...)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("stop")
	obs := &cancelOnFacts{node: "core", cancel: func() { cancel(cause) }}
	o := lf.opts("")
	o.Observer = obs
	rep, err := verify(ctx, o, placeholderRoots, 1)
	if !errors.Is(err, cause) || rep == nil {
		t.Fatalf("rep %v err %v", rep != nil, err)
	}
}

// cancelOnFacts cancels once node finished its facts phase.
type cancelOnFacts struct {
	NopObserver
	node   string
	cancel func()
}

func (o *cancelOnFacts) NodeEvent(node, phase, msg string) {
	if node == o.node && phase == "facts" && msg == "done" {
		o.cancel()
	}
}
