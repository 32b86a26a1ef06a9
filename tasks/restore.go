package tasks

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// Node restore statuses (report nodes[].restore.status).
const (
	RestoreSuccess    = "success"
	RestoreFailed     = "failed"
	RestorePartial    = "partial" // stopped mid-way; the steps say how far it went
	RestoreRunning    = "running" // still running on the node: attach follows it
	RestoreNotStarted = "not-started"
)

// Step statuses.
const (
	StepOK      = "ok"
	StepFail    = "fail"
	StepRunning = "running"
	StepStopped = "stopped"
)

// Phases of a node's run, in order. Each is recorded once reached so that
// attach knows what is left to do.
const (
	PhasePlanned  = ""         // nothing done on the node
	PhaseClaimed  = "claimed"  // run directory and waiting wrapper created
	PhaseStopped  = "stopped"  // bmctl stop done
	PhaseStarted  = "started"  // "go" sent: the script runs
	PhaseAnswered = "answered" // the verified answer was written
	PhaseDone     = "done"     // outcome known
)

// StepRecord is one step of the script on a node.
type StepRecord struct {
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
}

// NodeRun is one node's restore: its plan and how far it went. It is plain
// data, saved by the caller (state.json) after every change.
type NodeRun struct {
	Plan         NodePlan     `json:"plan"`
	Phase        string       `json:"phase"`
	Status       string       `json:"status"`
	Reason       string       `json:"reason,omitempty"`
	ExitCode     *int         `json:"exit_code"`
	Steps        []StepRecord `json:"steps"`
	Tagged       []string     `json:"tagged"`
	FalseSuccess string       `json:"false_success,omitempty"`
	FailSeen     bool         `json:"fail_seen,omitempty"`
	TimedOut     bool         `json:"timed_out,omitempty"`
	TimeoutWhat  string       `json:"timeout_what,omitempty"` // the step, "menu" or "run"
	StartedAt    time.Time    `json:"started_at"`
	EndedAt      time.Time    `json:"ended_at"`
}

// LastCompleted returns the name of the last step that ended OK, or "".
func (n *NodeRun) LastCompleted() string {
	for i := len(n.Steps) - 1; i >= 0; i-- {
		if n.Steps[i].Status == StepOK {
			return n.Steps[i].Name
		}
	}
	return ""
}

// RunState is a restore run: its id, the generation and every node's run.
type RunState struct {
	RunID      string    `json:"run_id"`
	Generation int       `json:"generation"`
	Nodes      []NodeRun `json:"nodes"`
}

// Find returns the run of node name, or nil.
func (s *RunState) Find(name string) *NodeRun {
	for i := range s.Nodes {
		if s.Nodes[i].Plan.Node == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// LogStore keeps each node's output on the workstation.
type LogStore interface {
	// Open opens node's log for appending and returns its current size,
	// which is also the offset in the remote output where it stopped.
	Open(node string) (io.WriteCloser, int64, error)
	// Replay opens node's log for reading from its start.
	Replay(node string) (io.ReadCloser, error)
}

// RestoreOptions drive Restore.
type RestoreOptions struct {
	State    *RunState
	Nodes    []inventory.Node  // like State.Nodes
	Conns    []transport.Conn  // like State.Nodes; nil = not connected
	Logs     LogStore          // required
	Sender   *Sender           // nil = a plain sender
	Observer Observer          // nil = NopObserver
	Save     func(s *RunState) // called, serialised, after every change
	// StepTimeout is --step-timeout (0 = only the known endless waits).
	StepTimeout time.Duration
	// MenuTimeout is how long the menu may take to appear (0 = 2m).
	MenuTimeout time.Duration
	// Detach returns ErrDetached once the first stage run has its menus
	// answered.
	Detach bool
	// StopOnCancel says, given ctx's cause, whether a cancelled run stops
	// the running scripts (a time limit) or leaves them running (Ctrl-C).
	StopOnCancel func(cause error) bool
	RunsRoot     string // "" = RunsDir
	// Parallel is -p/--parallel: at most this many nodes are worked on at
	// once (claimed, stopped, or restoring within a stage); 0 = all.
	Parallel int
	// noProcCheck skips the claim's look for restore processes outside
	// run directories: tests share their machine with other restores.
	noProcCheck bool
}

// Errors of Restore.
var (
	// ErrBusy: a restore already runs on a node; nothing was changed.
	ErrBusy = errors.New("a restore is already running")
	// ErrDetached: the run detached on request; restores keep running.
	ErrDetached = errors.New("detached")
	// ErrNotFollowed: a node's restore still runs but could not be
	// followed to its end (connection lost); attach continues the run.
	ErrNotFollowed = errors.New("restore still running, no longer followed")
)

// ErrRunID: a run id that prapush did not make (state.json edited, a
// mistyped --resume); it never reaches a remote command.
var ErrRunID = errors.New("invalid run id")

var runIDRe = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// CheckRunID returns an ErrRunID error unless id has the form prapush gives
// run ids (20060102T150405Z-0123abcd).
func CheckRunID(id string) error {
	if !runIDRe.MatchString(id) {
		return fmt.Errorf("check run id %q: want YYYYMMDDTHHMMSSZ-<8 hex digits>: %w", id, ErrRunID)
	}
	return nil
}

// DefaultMenuTimeout is how long the menu may take to appear.
const DefaultMenuTimeout = 2 * time.Minute

// cleanupTimeout bounds the commands that stop a run once ctx is done.
const cleanupTimeout = 30 * time.Second

type engine struct {
	o   RestoreOptions
	mu  sync.Mutex
	obs Observer
}

// Restore runs (or continues, for attach) the restore of o.State: every
// node claimed (run directory and a waiting wrapper: the lock), BlueMind
// stopped on every node, then the stages in order, the nodes of a stage in
// parallel, a stage starting only when every node before it succeeded. The
// outcome of each node is in o.State. It returns ErrBusy when a node is
// already restoring (nothing changed), ErrDetached, or ctx's cause when
// interrupted; nil once every stage that could run has run.
func Restore(ctx context.Context, o RestoreOptions) error {
	// The run id names remote paths and a systemd unit: a tampered
	// state.json or --resume must not reach a remote command.
	if err := CheckRunID(o.State.RunID); err != nil {
		return err
	}
	if o.RunsRoot == "" {
		o.RunsRoot = RunsDir
	}
	if o.MenuTimeout <= 0 {
		o.MenuTimeout = DefaultMenuTimeout
	}
	if o.Sender == nil {
		o.Sender = &Sender{}
	}
	e := &engine{o: o, obs: o.Observer}
	if e.obs == nil {
		e.obs = NopObserver{}
	}
	st := o.State
	all := make([]int, len(st.Nodes))
	for i := range all {
		all[i] = i
	}
	// 1. Claim every node that is not yet: the lock before any change.
	var busy []error
	var unclaimed []string
	e.parallel(ctx, filter(all, func(i int) bool { return st.Nodes[i].Phase == PhasePlanned }), func(ctx context.Context, i int) {
		err := e.claim(ctx, i)
		e.mu.Lock()
		defer e.mu.Unlock()
		switch {
		case errors.Is(err, ErrBusy):
			busy = append(busy, err)
		case err != nil && ctx.Err() == nil:
			unclaimed = append(unclaimed, st.Nodes[i].Plan.Node)
		}
	})
	if len(busy) > 0 {
		e.cancelWaiting(ctx, "")
		return errors.Join(busy...)
	}
	// A node that could not be claimed is not locked: no stage may start,
	// and every wrapper already waiting is cancelled (its lock released).
	if len(unclaimed) > 0 {
		slices.Sort(unclaimed)
		e.cancelWaiting(ctx, "not started: "+strings.Join(unclaimed, ", ")+" could not be claimed")
		return nil
	}
	if err := ctx.Err(); err != nil {
		return e.interrupted(ctx)
	}
	// 2. BlueMind stopped everywhere before the first stage (domain §6):
	// no stage starts while BlueMind may still run on any node.
	var unstopped []string
	e.parallel(ctx, filter(all, func(i int) bool { return st.Nodes[i].Phase == PhaseClaimed }), func(ctx context.Context, i int) {
		if err := e.stopBlueMind(ctx, i); err != nil && ctx.Err() == nil {
			e.mu.Lock()
			unstopped = append(unstopped, st.Nodes[i].Plan.Node)
			e.mu.Unlock()
		}
	})
	if len(unstopped) > 0 {
		slices.Sort(unstopped)
		e.cancelWaiting(ctx, "not started: BlueMind could not be stopped on "+strings.Join(unstopped, ", "))
		return nil
	}
	if err := ctx.Err(); err != nil {
		return e.interrupted(ctx)
	}
	// 3. The stages.
	for _, stage := range e.stages() {
		if err := ctx.Err(); err != nil {
			return e.interrupted(ctx)
		}
		todo := filter(stage, func(i int) bool { return st.Nodes[i].Phase != PhaseDone })
		if len(todo) == 0 {
			continue
		}
		if blocker := e.blocker(stage); blocker != "" {
			e.cancelWaiting(ctx, blocker)
			return nil
		}
		e.parallel(ctx, todo, func(ctx context.Context, i int) { e.runNode(ctx, i) })
		if err := ctx.Err(); err != nil {
			return e.interrupted(ctx)
		}
		if o.Detach {
			return ErrDetached
		}
		// A node still running that prapush no longer follows (the
		// connection died): the next stage must wait for it, and its
		// waiting run must stay for attach.
		var lost []error
		for _, i := range todo {
			if n := st.Nodes[i]; n.Phase != PhaseDone {
				lost = append(lost, fmt.Errorf("%s: %s: %w", n.Plan.Node, n.Reason, ErrNotFollowed))
			}
		}
		if len(lost) > 0 {
			return errors.Join(lost...)
		}
	}
	return nil
}

// interrupted ends a run whose ctx is done: on a time limit the runs still
// waiting to start are cancelled (their lock released, they will not run);
// on an interruption they stay, for attach to start them.
func (e *engine) interrupted(ctx context.Context) error {
	cause := context.Cause(ctx)
	if e.o.StopOnCancel != nil && e.o.StopOnCancel(cause) {
		e.cancelWaiting(ctx, "not started: the run exceeded its time limit")
	}
	return cause
}

// parallel runs fn for every index of idx, at most o.Parallel at once (0 =
// all), and waits. An index still waiting for its turn when ctx is done is
// skipped: its phase stays for attach.
func (e *engine) parallel(ctx context.Context, idx []int, fn func(ctx context.Context, i int)) {
	var sem chan struct{}
	if e.o.Parallel > 0 {
		sem = make(chan struct{}, e.o.Parallel)
	}
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Go(func() {
			if sem != nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					return
				}
			}
			fn(ctx, i)
		})
	}
	wg.Wait()
}

func filter(idx []int, keep func(i int) bool) []int {
	var out []int
	for _, i := range idx {
		if keep(i) {
			out = append(out, i)
		}
	}
	return out
}

// stages returns the node indexes grouped by stage, ascending.
func (e *engine) stages() [][]int {
	byStage := map[int][]int{}
	var keys []int
	for i, n := range e.o.State.Nodes {
		if _, ok := byStage[n.Plan.Stage]; !ok {
			keys = append(keys, n.Plan.Stage)
		}
		byStage[n.Plan.Stage] = append(byStage[n.Plan.Stage], i)
	}
	slices.Sort(keys)
	out := make([][]int, 0, len(keys))
	for _, k := range keys {
		out = append(out, byStage[k])
	}
	return out
}

// blocker returns why stage may not start: a node of an earlier stage that
// did not succeed ("" when it may).
func (e *engine) blocker(stage []int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.o.State.Nodes[stage[0]].Plan.Stage
	for _, n := range e.o.State.Nodes {
		if n.Plan.Stage < s && n.Status != RestoreSuccess {
			return "stage " + strconv.Itoa(s) + " not started: " + n.Plan.Node + " (stage " + strconv.Itoa(n.Plan.Stage) + ") did not succeed"
		}
	}
	return ""
}

// mutate changes node i's run under the lock and saves the state.
func (e *engine) mutate(i int, fn func(n *NodeRun)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(&e.o.State.Nodes[i])
	if e.o.Save != nil {
		e.o.Save(e.o.State)
	}
}

func (e *engine) node(i int) inventory.Node {
	if i < len(e.o.Nodes) {
		return e.o.Nodes[i]
	}
	return inventory.Node{Name: e.o.State.Nodes[i].Plan.Node}
}

func (e *engine) conn(i int) transport.Conn {
	if i < len(e.o.Conns) {
		return e.o.Conns[i]
	}
	return nil
}

func (e *engine) send(ctx context.Context, i int, c Command) (string, error) {
	conn := e.conn(i)
	name := e.o.State.Nodes[i].Plan.Node
	if conn == nil {
		return "", fmt.Errorf("%s on %s: not connected: %w", c.What, name, transport.ErrUnreachable)
	}
	var out strings.Builder
	err := e.o.Sender.Send(ctx, name, conn, c, &out)
	return out.String(), err
}

func (e *engine) fail(i int, status, reason string) {
	e.mutate(i, func(n *NodeRun) {
		n.Status, n.Reason = status, reason
		n.Phase = PhaseDone
		if n.EndedAt.IsZero() {
			n.EndedAt = time.Now().UTC()
		}
	})
	e.obs.NodeEvent(e.o.State.Nodes[i].Plan.Node, "restore", status+": "+reason)
}

// notStarted records why node i could not be prepared; its phase stays, so
// that cancelWaiting releases whatever wrapper it may have.
func (e *engine) notStarted(i int, reason string) {
	e.mutate(i, func(n *NodeRun) { n.Status, n.Reason = RestoreNotStarted, reason })
	e.obs.NodeEvent(e.o.State.Nodes[i].Plan.Node, "restore", RestoreNotStarted+": "+reason)
}

// claim creates node i's run directory and waiting wrapper.
func (e *engine) claim(ctx context.Context, i int) error {
	name := e.o.State.Nodes[i].Plan.Node
	e.obs.NodeEvent(name, "claim", "creating the run directory")
	out, err := e.send(ctx, i, claimCmd(e.o.RunsRoot, e.o.State.RunID, e.o.State.Nodes[i].Plan, !e.o.noProcCheck))
	if err != nil {
		if ctx.Err() == nil {
			e.notStarted(i, "claim: "+err.Error())
		}
		return err
	}
	recs, perr := ParseRecords([]byte(out))
	for _, r := range recs {
		switch r.Key {
		case "busy":
			e.mutate(i, func(n *NodeRun) { n.Status, n.Reason = RestoreNotStarted, string(r.Value) })
			return fmt.Errorf("claim %s: %s: %w", name, r.Value, ErrBusy)
		case "err":
			e.notStarted(i, "claim: "+string(r.Value))
			return errors.New(string(r.Value))
		case "pid":
			e.mutate(i, func(n *NodeRun) { n.Phase, n.Status = PhaseClaimed, RestoreNotStarted })
			return nil
		}
	}
	err = fmt.Errorf("claim %s: no answer from the claim script: %w", name, errors.Join(perr, errors.New("incomplete output")))
	e.notStarted(i, err.Error())
	return err
}

// stopBlueMind runs bmctl stop on node i; on failure the node stays
// claimed (its waiting wrapper is cancelled with the others).
func (e *engine) stopBlueMind(ctx context.Context, i int) error {
	e.obs.NodeEvent(e.o.State.Nodes[i].Plan.Node, "stop", "bmctl stop")
	if _, err := e.send(ctx, i, stopBlueMindCmd()); err != nil {
		if ctx.Err() == nil {
			e.notStarted(i, err.Error())
		}
		return err
	}
	e.mutate(i, func(n *NodeRun) { n.Phase = PhaseStopped })
	return nil
}

// cancelWaiting cancels the wrappers still waiting for "go" (their lock is
// released) and records why they did not start.
func (e *engine) cancelWaiting(ctx context.Context, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var idx []int
	for i, n := range e.o.State.Nodes {
		// A node whose claim failed may still have a wrapper (the
		// connection died after it started): cancel it too, when a
		// command can reach it.
		planned := n.Phase == PhasePlanned && n.Status == RestoreNotStarted && n.Reason != "" && e.conn(i) != nil
		if n.Phase == PhaseClaimed || n.Phase == PhaseStopped || planned {
			idx = append(idx, i)
		}
	}
	e.parallel(ctx, idx, func(ctx context.Context, i int) {
		_, err := e.send(ctx, i, runCtlCmd(e.o.RunsRoot, e.o.State.RunID, "cancel"))
		e.mutate(i, func(n *NodeRun) {
			n.Phase, n.Status = PhaseDone, RestoreNotStarted
			if why != "" && n.Reason == "" {
				n.Reason = why
			}
			if err != nil {
				n.Reason = strings.TrimPrefix(n.Reason+"; ", "; ") + "cancelling its waiting run: " + err.Error()
			}
		})
	})
}

// runNode starts node i's script if it is not yet, follows it to its end
// (answering the verified menu line), and records the outcome.
func (e *engine) runNode(ctx context.Context, i int) {
	st := e.o.State
	name := st.Nodes[i].Plan.Node
	if st.Nodes[i].Phase == PhaseStopped || st.Nodes[i].Phase == PhaseClaimed {
		out, err := e.send(ctx, i, runCtlCmd(e.o.RunsRoot, st.RunID, "go"))
		if err != nil {
			// Interrupted: the phase stays, attach sends "go" again.
			if ctx.Err() == nil {
				e.fail(i, RestoreNotStarted, err.Error())
			}
			return
		}
		recs, _ := ParseRecords([]byte(out))
		sent := false
		for _, r := range recs {
			switch r.Key {
			case "sent":
				sent = true
			case "dead", "exit":
				e.fail(i, RestoreNotStarted, "the run's wrapper is gone (node rebooted or run killed)")
				return
			}
		}
		if !sent {
			e.fail(i, RestoreNotStarted, "no answer when starting the script")
			return
		}
		e.mutate(i, func(n *NodeRun) {
			n.Phase, n.Status, n.StartedAt = PhaseStarted, RestoreRunning, time.Now().UTC()
		})
		e.obs.NodeEvent(name, "restore", "script started")
	}
	e.follow(ctx, i)
}

// sink receives the followed output: to the local log, through the parser,
// the events to the node's goroutine.
type sink struct {
	w      io.Writer
	p      *OutputParser
	events chan []Event
	stop   chan struct{}
}

func (s *sink) Write(b []byte) (int, error) {
	if _, err := s.w.Write(b); err != nil {
		return 0, fmt.Errorf("write local log: %w", err)
	}
	if evs := s.p.Feed(b); len(evs) > 0 {
		select {
		case s.events <- evs:
		case <-s.stop:
		}
	}
	return len(b), nil
}

// follower is the state of following one node.
type follower struct {
	e        *engine
	i        int
	node     inventory.Node
	saved    []StepRecord // steps recorded before an attach
	replay   bool
	stepDue  time.Time
	stepName string
	menuDue  time.Time
	kill     bool
	// Found while replaying, acted on once the replay is known to be
	// the node's output.
	menu        *Event
	promptAgain bool
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// sameOutput reports the size of node i's output and whether the local
// log's first n bytes are exactly its first n bytes.
func (e *engine) sameOutput(ctx context.Context, i int, n int64) (int64, bool, error) {
	name := e.o.State.Nodes[i].Plan.Node
	out, err := e.send(ctx, i, verifyLogCmd(e.o.RunsRoot, e.o.State.RunID, n))
	if err != nil {
		return 0, false, err
	}
	recs, perr := ParseRecords([]byte(out))
	var size int64 = -1
	var sum string
	done := false
	for _, r := range recs {
		switch r.Key {
		case "missing":
			return 0, false, errors.New("the node has no output file")
		case "size":
			size, _ = strconv.ParseInt(strings.TrimSpace(string(r.Value)), 10, 64)
		case "sum":
			sum = strings.TrimSpace(string(r.Value))
		case "end":
			done = true
		}
	}
	if !done || size < 0 {
		return 0, false, fmt.Errorf("read the output's size: %w", errors.Join(perr, errors.New("incomplete output")))
	}
	if size < n || sum == "" {
		return size, false, nil
	}
	r, err := e.o.Logs.Replay(name)
	if err != nil {
		return 0, false, fmt.Errorf("open the local log: %w", err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, r, n); err != nil {
		return 0, false, fmt.Errorf("read the local log: %w", err)
	}
	return size, hex.EncodeToString(h.Sum(nil)) == sum, nil
}

// replayLocal feeds the first n bytes of node's local log to fn.
func (e *engine) replayLocal(node string, n int64, fn func([]byte)) error {
	r, err := e.o.Logs.Replay(node)
	if err != nil {
		return fmt.Errorf("open the local log: %w", err)
	}
	defer r.Close()
	buf := make([]byte, 32<<10)
	var read int64
	for read < n {
		k, rerr := r.Read(buf[:min(int64(len(buf)), n-read)])
		read += int64(k)
		fn(buf[:k])
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read the local log: %w", rerr)
		}
	}
	return nil
}

// afterReplay acts on what the replay found, now known to be the node's
// own output: a menu not yet answered is answered (answerCmd refuses a
// second answer), a menu shown again stops the script, and the running
// step's time limit counts from when it started.
func (fl *follower) afterReplay(ctx context.Context) {
	e, i := fl.e, fl.i
	if fl.menu != nil {
		ev := *fl.menu
		fl.menu = nil
		fl.handle(ctx, ev)
	}
	if fl.promptAgain && !fl.kill {
		fl.handle(ctx, Event{Kind: EventPromptAgain})
	}
	if fl.stepName != "" {
		if d := StepTimeout(fl.node, e.o.StepTimeout, fl.stepName); d > 0 {
			e.mu.Lock()
			steps := e.o.State.Nodes[i].Steps
			e.mu.Unlock()
			for j := len(steps) - 1; j >= 0; j-- {
				if steps[j].Name == fl.stepName && steps[j].Status == StepRunning {
					fl.stepDue = steps[j].StartedAt.Add(d)
					break
				}
			}
		}
	}
}

func (e *engine) follow(ctx context.Context, i int) {
	st := e.o.State
	name := st.Nodes[i].Plan.Node
	fl := &follower{e: e, i: i, node: e.node(i)}
	w, off, err := e.o.Logs.Open(name)
	if err != nil {
		e.mutate(i, func(n *NodeRun) { n.Reason = err.Error() })
		return
	}
	defer w.Close()
	p := &OutputParser{}
	if st.Nodes[i].Phase != PhaseAnswered {
		fl.menuDue = time.Now().Add(e.o.MenuTimeout)
	}
	stat, err := e.status(ctx, i, 0)
	if err != nil {
		e.mutate(i, func(n *NodeRun) { n.Reason = "cannot read the run's state: " + err.Error() })
		return
	}
	if stat.Missing || stat.PID <= 0 {
		e.fail(i, RestoreFailed, "the run directory is gone from the node, or has no wrapper pid")
		return
	}
	// Replay what was already output: the parser's state (menu answered or
	// not, current step) comes back; the steps keep their recorded times.
	// The local log is replayed only when it is exactly the node's output
	// so far (two followers may have appended to it); otherwise the node's
	// own output is. Replayed events never act by themselves: what they
	// call for is decided afterwards, against the node.
	if off > 0 {
		e.mutate(i, func(n *NodeRun) {
			fl.saved = n.Steps
			n.Steps, n.Tagged, n.FailSeen, n.FalseSuccess = nil, nil, false, ""
		})
		fl.replay = true
		replay := func(b []byte) {
			for _, ev := range p.Feed(b) {
				fl.handle(ctx, ev)
			}
		}
		size, same, err := e.sameOutput(ctx, i, off)
		switch {
		case err != nil:
			fl.replay = false
			e.mutate(i, func(n *NodeRun) { n.Reason = "cannot compare the local log with the node's output: " + err.Error() })
			return
		case same:
			err = e.replayLocal(name, off, replay)
		default:
			e.obs.NodeEvent(name, "restore", fmt.Sprintf("the local log (%d bytes) is not the node's output (%d bytes): replaying the node's", off, size))
			err = e.conn(i).Run(ctx, posixSh(headCmd(e.o.RunsRoot, st.RunID, size).Line), nil, writerFunc(func(b []byte) (int, error) {
				replay(b)
				return len(b), nil
			}), nil)
			off = size
		}
		fl.replay = false
		if err != nil {
			e.mutate(i, func(n *NodeRun) { n.Reason = "replaying the output: " + err.Error() })
			return
		}
		fl.afterReplay(ctx)
	}
	if fl.kill {
		fl.stop(ctx, "")
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sk := &sink{w: w, p: p, events: make(chan []Event, 64), stop: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- e.conn(i).Run(fctx, posixSh(followCmd(e.o.RunsRoot, st.RunID, off, stat.PID).Line), nil, sk, nil)
	}()
	// halt stops following and waits for the follow command: the sink
	// must not block on events nobody reads any more.
	var haltOnce sync.Once
	halt := func() {
		haltOnce.Do(func() {
			cancel()
			close(sk.stop)
			<-done
		})
	}
	defer halt()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due := fl.due()
		if !due.IsZero() {
			timer.Reset(time.Until(due))
		} else {
			timer.Stop()
		}
		select {
		case evs := <-sk.events:
			for _, ev := range evs {
				fl.handle(ctx, ev)
			}
			if fl.kill {
				halt()
				fl.stop(ctx, "")
				return
			}
			if e.o.Detach && st.Nodes[i].Phase == PhaseAnswered {
				halt()
				return
			}
		case <-timer.C:
			what := fl.stepName
			limit := StepTimeout(fl.node, e.o.StepTimeout, what)
			reason := fmt.Sprintf("step %q exceeded its limit of %s: stopped", what, limit)
			if !fl.menuDue.IsZero() && !time.Now().Before(fl.menuDue) {
				what, reason = "menu", fmt.Sprintf("the menu did not appear within %s: stopped", e.o.MenuTimeout)
			}
			e.mutate(i, func(n *NodeRun) { n.TimedOut, n.TimeoutWhat = true, what })
			halt()
			fl.stop(ctx, reason)
			return
		case err := <-done:
			done <- err // for halt
			if ctx.Err() != nil {
				fl.cancelled(ctx)
				return
			}
			// Drain what the sink queued before the command ended.
			for {
				select {
				case evs := <-sk.events:
					for _, ev := range evs {
						fl.handle(ctx, ev)
					}
					continue
				default:
				}
				break
			}
			if fl.kill {
				fl.stop(ctx, "")
				return
			}
			fl.finish(ctx, err)
			return
		case <-ctx.Done():
			halt()
			fl.cancelled(ctx)
			return
		}
	}
}

// due returns the next deadline: the menu's while unanswered, else the
// running step's limit.
func (fl *follower) due() time.Time {
	if !fl.menuDue.IsZero() {
		return fl.menuDue
	}
	return fl.stepDue
}

// times returns the start and end to record for the k-th step (0-based)
// named step: during a replay, the times recorded when it was first seen
// (steps are matched by position: several steps share a name); else now.
func (fl *follower) times(k int, step string) (time.Time, time.Time) {
	now := time.Now().UTC()
	if fl.replay && k < len(fl.saved) && fl.saved[k].Name == step {
		s, e := fl.saved[k].StartedAt, fl.saved[k].EndedAt
		if s.IsZero() {
			s = now
		}
		if e.IsZero() {
			e = now
		}
		return s, e
	}
	return now, now
}

// handle applies one event to the node's run.
func (fl *follower) handle(ctx context.Context, ev Event) {
	e, i := fl.e, fl.i
	nr := &e.o.State.Nodes[i]
	switch ev.Kind {
	case EventMenu:
		if nr.Phase == PhaseAnswered || fl.kill {
			return
		}
		if fl.replay {
			fl.menu = &ev
			return
		}
		want := nr.Plan.MenuLine
		got := ""
		for _, m := range ev.Menu {
			if m.Index == nr.Plan.MenuIndex {
				got = m.String()
			}
		}
		if !ev.MenuComplete || got != want {
			fl.kill = true
			reason := fmt.Sprintf("menu entry %d is %q, expected %q: not answered, script stopped", nr.Plan.MenuIndex, got, want)
			if !ev.MenuComplete {
				reason = fmt.Sprintf("the menu could not be read in full (%d entries): not answered, script stopped", len(ev.Menu))
			}
			e.mutate(i, func(n *NodeRun) { n.Reason = reason })
			return
		}
		out, err := e.send(ctx, i, answerCmd(e.o.RunsRoot, e.o.State.RunID, nr.Plan.MenuIndex, ev.End))
		already := strings.Contains(out, "@@prapush already")
		if err == nil && !already && !strings.Contains(out, "@@prapush sent") {
			err = errors.New("the script is gone")
		}
		if err != nil {
			fl.kill = true
			e.mutate(i, func(n *NodeRun) { n.Reason = "answering the menu: " + err.Error() })
			return
		}
		fl.menuDue = time.Time{}
		e.mutate(i, func(n *NodeRun) { n.Phase = PhaseAnswered })
		if already {
			e.obs.NodeEvent(nr.Plan.Node, "restore", "menu already answered on the node: not answered again")
			return
		}
		e.obs.NodeEvent(nr.Plan.Node, "restore", fmt.Sprintf("menu verified, answered %d (%s)", nr.Plan.MenuIndex, strings.ReplaceAll(want, "\t", " ")))
	case EventPromptAgain:
		if fl.kill {
			return
		}
		if fl.replay {
			fl.promptAgain = true
			return
		}
		fl.kill = true
		e.mutate(i, func(n *NodeRun) {
			n.Reason = "the script showed its menu again after the answer (answer refused): script stopped"
		})
	case EventStepStart:
		e.mutate(i, func(n *NodeRun) {
			s, _ := fl.times(len(n.Steps), ev.Step)
			n.Steps = append(n.Steps, StepRecord{Name: ev.Step, Status: StepRunning, StartedAt: s})
		})
		fl.stepName = ev.Step
		fl.stepDue = time.Time{}
		if d := StepTimeout(fl.node, e.o.StepTimeout, ev.Step); d > 0 && !fl.replay {
			fl.stepDue = time.Now().Add(d)
		}
		if !fl.replay {
			e.obs.NodeEvent(nr.Plan.Node, "step", ev.Step)
		}
	case EventStepEnd:
		e.mutate(i, func(n *NodeRun) {
			for j := len(n.Steps) - 1; j >= 0; j-- {
				if n.Steps[j].Name == ev.Step && n.Steps[j].Status == StepRunning {
					_, end := fl.times(j, ev.Step)
					n.Steps[j].EndedAt = end
					n.Steps[j].Status = StepOK
					if !ev.OK {
						n.Steps[j].Status = StepFail
						n.FailSeen = true
						n.Reason = fmt.Sprintf("step %q failed (%d)", ev.Step, ev.RC)
					}
					break
				}
			}
		})
		fl.stepDue, fl.stepName = time.Time{}, ""
		if !fl.replay {
			st := "OK"
			if !ev.OK {
				st = "FAIL (" + strconv.Itoa(ev.RC) + ")"
			}
			e.obs.NodeEvent(nr.Plan.Node, "step", ev.Step+" "+st)
		}
	case EventTagged:
		e.mutate(i, func(n *NodeRun) {
			if !slices.Contains(n.Tagged, ev.Tag) {
				n.Tagged = append(n.Tagged, ev.Tag)
			}
		})
	case EventFalseSuccess:
		e.mutate(i, func(n *NodeRun) { n.FalseSuccess = ev.Text })
	}
}

// stop kills the node's process group and records it as stopped mid-way.
func (fl *follower) stop(ctx context.Context, reason string) {
	e, i := fl.e, fl.i
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := e.send(cctx, i, killCmd(e.o.RunsRoot, e.o.State.RunID))
	e.mutate(i, func(n *NodeRun) {
		if reason != "" {
			n.Reason = reason
		}
		if err != nil {
			n.Reason += "; stopping it: " + err.Error()
		}
		for j := range n.Steps {
			if n.Steps[j].Status == StepRunning {
				n.Steps[j].Status, n.Steps[j].EndedAt = StepStopped, time.Now().UTC()
			}
		}
		n.Status = RestorePartial
		if n.LastCompleted() == "" {
			n.Status = RestoreFailed
		}
		n.Phase = PhaseDone
		n.EndedAt = time.Now().UTC()
	})
	e.obs.NodeEvent(e.o.State.Nodes[i].Plan.Node, "restore", "stopped: "+e.o.State.Nodes[i].Reason)
}

// cancelled handles ctx done while following: a time limit stops the
// script; an interruption leaves it running for attach.
func (fl *follower) cancelled(ctx context.Context) {
	cause := context.Cause(ctx)
	if fl.e.o.StopOnCancel != nil && fl.e.o.StopOnCancel(cause) {
		fl.e.mutate(fl.i, func(n *NodeRun) { n.TimedOut, n.TimeoutWhat = true, "run" })
		fl.stop(ctx, "the run exceeded its time limit ("+cause.Error()+"): stopped")
		return
	}
	fl.e.obs.NodeEvent(fl.e.o.State.Nodes[fl.i].Plan.Node, "restore", "no longer followed; still running on the node")
}

// finish records the outcome once the follow command ended.
func (fl *follower) finish(ctx context.Context, followErr error) {
	e, i := fl.e, fl.i
	stat, err := e.status(ctx, i, 0)
	if err != nil || (stat.Exit == "" && stat.Alive) {
		why := "following stopped"
		if followErr != nil {
			why += ": " + followErr.Error()
		}
		if err != nil {
			why += "; state unknown: " + err.Error()
		}
		e.mutate(i, func(n *NodeRun) { n.Reason = why + "; attach to follow it" })
		return
	}
	e.mutate(i, func(n *NodeRun) { Judge(n, stat.Exit) })
	nr := e.o.State.Nodes[i]
	e.obs.NodeEvent(nr.Plan.Node, "restore", nr.Status+" "+nr.Reason)
}

// Judge sets n's outcome from its recorded output and the exit status the
// wrapper wrote (spec restore item 7): success only when the exit status is
// 0 AND the last step is "Starting BlueMind services" OK AND no step failed
// AND no false-success message AND (bm4+) a "This server is tagged as <t>"
// for every tag the node had to restore.
func Judge(n *NodeRun, exit string) {
	n.Phase = PhaseDone
	if n.EndedAt.IsZero() {
		n.EndedAt = time.Now().UTC()
	}
	rc, err := strconv.Atoi(strings.TrimSpace(exit))
	if err == nil {
		n.ExitCode = &rc
	}
	for j := range n.Steps {
		if n.Steps[j].Status == StepRunning {
			n.Steps[j].Status, n.Steps[j].EndedAt = StepStopped, n.EndedAt
		}
	}
	var why []string
	switch {
	case exit == "":
		why = append(why, "the script died without an exit status (node rebooted or run killed)")
	case err != nil:
		why = append(why, "the script was "+exit)
	case rc != 0:
		why = append(why, "exit status "+strconv.Itoa(rc))
	}
	if n.FailSeen {
		why = append(why, cmp.Or(n.Reason, "a step failed"))
	}
	if n.FalseSuccess != "" {
		why = append(why, "the script restored nothing: "+strconv.Quote(n.FalseSuccess))
	}
	last := len(n.Steps) - 1
	if last < 0 || n.Steps[last].Name != "Starting BlueMind services" || n.Steps[last].Status != StepOK {
		why = append(why, "no final \"Starting BlueMind services OK\"")
	}
	if n.Plan.Family != FamilyLegacy {
		var missing []string
		for _, t := range n.Plan.Tags {
			if !slices.Contains(n.Tagged, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			why = append(why, "no \"This server is tagged as\" for "+strings.Join(missing, ", "))
		}
	}
	if len(why) == 0 {
		n.Status, n.Reason = RestoreSuccess, ""
		return
	}
	n.Status = RestoreFailed
	if err != nil && n.LastCompleted() != "" {
		n.Status = RestorePartial
	}
	n.Reason = strings.Join(why, "; ")
}

func (e *engine) status(ctx context.Context, i int, tail int) (RunStatus, error) {
	out, err := e.send(ctx, i, statusCmd(e.o.RunsRoot, e.o.State.RunID, tail))
	if err != nil {
		return RunStatus{}, err
	}
	s, perr := parseRunStatus(out)
	if !s.Done {
		return s, fmt.Errorf("read the run's state: %w", errors.Join(perr, errors.New("incomplete output")))
	}
	return s, nil
}

// ReadRunStatus reads run runID's directory on one node (read-only), with
// the last tail bytes of its output.
func ReadRunStatus(ctx context.Context, conn transport.Conn, runID string, tail int) (RunStatus, error) {
	if err := CheckRunID(runID); err != nil {
		return RunStatus{}, err
	}
	var out strings.Builder
	if err := conn.Run(ctx, posixSh(statusCmd(RunsDir, runID, tail).Line), nil, &out, nil); err != nil {
		return RunStatus{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	s, perr := parseRunStatus(out.String())
	if !s.Done {
		return s, fmt.Errorf("read run %s: %w", runID, errors.Join(perr, errors.New("incomplete output")))
	}
	return s, nil
}

// CurrentStep returns the step being run (or last reported) in the tail of
// a script's output, and whether it ended OK.
func CurrentStep(tail []byte) (step string, status string) {
	p := &OutputParser{prompts: 1, menuDone: true}
	for _, ev := range p.Feed(tail) {
		switch ev.Kind {
		case EventStepStart:
			step, status = ev.Step, StepRunning
		case EventStepEnd:
			step, status = ev.Step, StepOK
			if !ev.OK {
				status = StepFail
			}
		}
	}
	if part := p.Partial(); part != "" {
		if n := len(part); n >= 3 && part[n-2] == ' ' && strings.IndexByte(`-\|/`, part[n-1]) >= 0 {
			step, status = part[:n-2], StepRunning
		}
	}
	return step, status
}
