package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

// restoreOpts are the flags of restore.
type restoreOpts struct {
	generation   string
	dryRun       bool
	yes          bool
	detach       bool
	resume       string
	noPost       bool
	noResync     bool
	stepTimeout  time.Duration
	allowPartial bool
}

// runFileName is the run's local state, next to report.json: what attach,
// status and --resume continue from.
const runFileName = "state.json"

// runSchema versions state.json.
const runSchema = "prapush.run/v1"

// runFile is state.json.
type runFile struct {
	Schema      string             `json:"schema"`
	RunID       string             `json:"run_id"`
	Inventory   string             `json:"inventory"`
	StartedAt   time.Time          `json:"started_at"`
	Generation  *report.Generation `json:"generation"`
	ResumedFrom string             `json:"resumed_from,omitempty"`
	StepTimeout time.Duration      `json:"step_timeout_ns,omitempty"`
	NoResync    bool               `json:"no_resync,omitempty"`
	NoPost      bool               `json:"no_post,omitempty"`
	State       *tasks.RunState    `json:"state"`
}

func (a *app) cmdRestore(ctx context.Context, args []string) error {
	var o restoreOpts
	rest, err := a.parseCommandFlags("restore", args, func(fs flagSet) {
		fs.StringVar(&o.generation, "generation", "", "")
		fs.BoolVar(&o.dryRun, "dry-run", false, "")
		fs.BoolVar(&o.yes, "yes", false, "")
		fs.BoolVar(&o.detach, "detach", false, "")
		fs.StringVar(&o.resume, "resume", "", "")
		fs.BoolVar(&o.noPost, "no-post", false, "")
		fs.BoolVar(&o.noResync, "no-resync", false, "")
		fs.DurationVar(&o.stepTimeout, "step-timeout", 0, "")
		fs.BoolVar(&o.allowPartial, "allow-partial", false, "")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("restore: unexpected argument %q", rest[0])
	}
	if o.stepTimeout < 0 {
		return usageErr("restore: --step-timeout must be positive")
	}
	if a.g.limit != "" && !o.allowPartial {
		return usageErr("restore: --limit restores only part of the architecture; the procedure restores ALL nodes (add --allow-partial to accept it)")
	}
	interactive := isTerminal(a.env.Stdin)
	var prev *runFile
	if o.resume != "" {
		if o.generation != "" {
			return usageErr("restore: --resume keeps the run's generation: drop --generation")
		}
		prev, _, err = a.loadRun(o.resume, false)
		if err != nil {
			return usageErr("restore: --resume: %v", err)
		}
		o.generation = strconv.Itoa(prev.State.Generation)
	}
	if o.generation == "" && !interactive {
		return usageErr("restore: --generation ID|latest is required when stdin is not a terminal")
	}
	if !o.yes && !o.dryRun && !interactive {
		return usageErr("restore: --yes is required when stdin is not a terminal (nothing asks for confirmation)")
	}
	iv, err := a.begin()
	if err != nil {
		return err
	}
	defer iv.Close()
	inv, nodes, runID, started := iv.inv, iv.nodes, iv.runID, iv.started
	if d := a.reportDir(runID); fileExists(filepath.Join(d, runFileName)) {
		return usageErr("restore: %s already holds a run (its logs and state would mix): choose another --report-dir", d)
	}
	topts := iv.options(a, a.observer())

	if o.generation == "" {
		id, err := a.pickGeneration(ctx, topts)
		if err != nil {
			return err
		}
		o.generation = id
	}

	// 1. The gate: every check, the chosen generation included.
	// One SSH connection per node, opened here and reused by the gate, the
	// plan and the restore.
	topts.Generation = o.generation
	// The plan's menu line is compared with the script's: the node renders
	// its dates itself.
	topts.NodeDates = true
	fleet, _ := tasks.Connect(ctx, topts)
	defer fleet.Close()
	res, verr := fleet.Verify(ctx)
	if res == nil {
		return verr
	}
	rep := a.newReport("restore", runID, inv, started)
	fillNodes(rep, res.Nodes)
	rep.ArchitectureChecks = convertChecks(res.Architecture)
	if g := res.Chosen; g != nil {
		rep.Generation = &report.Generation{ID: g.ID, ProtectionTime: g.Time().UTC(), DisplayName: g.DisplayName, Status: g.StatusText()}
	}
	if prev != nil {
		rep.Notes = append(rep.Notes, "resumes run "+prev.RunID)
	}
	dir := a.reportDir(runID)
	code := a.verdict(rep, res.Nodes, res.Architecture)
	if verr != nil {
		code = worstExit(code, interruptCode(ctx))
		rep.Notes = append(rep.Notes, "run stopped early: "+verr.Error())
	}
	if code != exitOK {
		rep.Notes = append(rep.Notes, "the gate failed: nothing was changed on any node")
		return a.endRestore(dir, rep, code, true)
	}

	// 2. The plan, rendered on the nodes (read-only commands).
	conns := fleet.Conns()
	sender := &tasks.Sender{DryRun: o.dryRun}
	plan, perr := tasks.BuildPlan(ctx, res, conns, sender)
	if plan != nil {
		for i, np := range plan.Nodes {
			rep.Nodes[i].Plan = planReport(np)
		}
	}
	if perr != nil {
		rep.Notes = append(rep.Notes, "plan: "+perr.Error())
		code := exitFailed
		if ctx.Err() != nil {
			code = interruptCode(ctx)
		}
		return a.endRestore(dir, rep, code, true)
	}
	a.printPlan(rep)
	if o.dryRun {
		rep.Notes = append(rep.Notes, "dry run: nothing was changed on any node")
		return a.endRestore(dir, rep, exitOK, true)
	}

	// Which nodes: all, or on --resume those that did not succeed; those
	// that did are carried over as done, so that a resumed run can itself
	// be resumed.
	var idx []int
	done := map[int]tasks.NodeRun{}
	for i, n := range nodes {
		if prev != nil {
			if pn := prev.State.Find(n.Name); pn != nil && pn.Status == tasks.RestoreSuccess {
				rep.Notes = append(rep.Notes, n.Name+" was restored by run "+prev.RunID+": not restored again")
				done[i] = *pn
				continue
			}
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		rep.Notes = append(rep.Notes, "nothing to resume: every node was restored")
		return a.endRestore(dir, rep, exitOK, true)
	}
	if !o.yes {
		if !a.confirm(rep, plan, idx) {
			rep.Notes = append(rep.Notes, "not confirmed: nothing was changed")
			return a.endRestore(dir, rep, exitInterrupted, true)
		}
	}
	st := &tasks.RunState{RunID: runID, Generation: plan.GenID}
	var runNodes []inventory.Node
	var runConns []transport.Conn
	for i := range nodes {
		nr, ok := done[i]
		if !ok {
			nr = tasks.NodeRun{Plan: plan.Nodes[i], Status: tasks.RestoreNotStarted}
		}
		st.Nodes = append(st.Nodes, nr)
		runNodes = append(runNodes, nodes[i])
		runConns = append(runConns, conns[i])
	}
	rf := &runFile{Schema: runSchema, RunID: runID, Inventory: inv.Path, StartedAt: started.UTC(), Generation: rep.Generation, StepTimeout: o.stepTimeout, NoResync: o.noResync, NoPost: o.noPost, State: st}
	if prev != nil {
		rf.ResumedFrom = prev.RunID
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	unlock, err := lockRun(dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := writeRun(dir, rf); err != nil {
		return err
	}
	// report.json exists from now on, so that attach can complete it even
	// when this process dies.
	a.finish(rep, exitInterrupted)
	if err := report.WriteDir(dir, rep); err != nil {
		return err
	}
	return a.runRestore(ctx, dir, rep, rf, inv, runNodes, runConns, o.detach)
}

// runRestore runs (or continues) the restore of rf and completes the report.
func (a *app) runRestore(ctx context.Context, dir string, rep *report.Report, rf *runFile, inv *inventory.Inventory, nodes []inventory.Node, conns []transport.Conn, detach bool) error {
	// Ctrl-C once stops following (ctx); a second one kills at once.
	stopWatch := context.AfterFunc(ctx, func() {
		if !errors.Is(context.Cause(ctx), errRunTimeout) {
			signal.Reset(os.Interrupt)
		}
	})
	defer stopWatch()
	fmt.Fprintf(a.env.Stderr, "run %s: follow it from another terminal with: %s\n", rf.RunID, a.attachCommand(rf.RunID))
	logs := &fileLogs{dir: filepath.Join(dir, report.DirLogs)}
	obs, stopLive := a.liveObserver(nodes, a.restoreObserver())
	defer stopLive()
	var saveErr error
	rerr := tasks.Restore(ctx, tasks.RestoreOptions{
		State: rf.State, Nodes: nodes, Conns: conns, Logs: logs,
		Parallel:    a.g.parallel,
		Observer:    obs,
		StepTimeout: rf.StepTimeout,
		Detach:      detach,
		Save: func(*tasks.RunState) {
			if err := writeRun(dir, rf); err != nil && saveErr == nil {
				saveErr = err
			}
		},
		StopOnCancel: func(cause error) bool { return errors.Is(cause, errRunTimeout) },
	})
	if saveErr != nil {
		rep.Notes = append(rep.Notes, "saving the run's state: "+saveErr.Error())
	}
	fillRestore(rep, rf)
	var codes []int
	for _, n := range rf.State.Nodes {
		switch {
		case n.TimedOut:
			codes = append(codes, exitTimeout)
		case n.Status == tasks.RestoreFailed || n.Status == tasks.RestorePartial:
			codes = append(codes, exitFailed)
		case n.Status == tasks.RestoreNotStarted && n.Reason != "":
			codes = append(codes, exitFailed)
		case n.Status == tasks.RestoreRunning && rerr == nil:
			codes = append(codes, exitFailed)
		}
		if n.Reason != "" {
			rep.Notes = append(rep.Notes, n.Plan.Node+": "+n.Reason)
		}
	}
	attachHint := false
	switch {
	case rerr == nil:
	case errors.Is(rerr, tasks.ErrRunID):
		codes = append(codes, exitUsage)
		rep.Notes = append(rep.Notes, rerr.Error()+": nothing was sent")
	case errors.Is(rerr, tasks.ErrBusy):
		codes = append(codes, exitBusy)
		rep.Notes = append(rep.Notes, rerr.Error()+": nothing was changed")
	case errors.Is(rerr, tasks.ErrDetached):
		codes = append(codes, exitDetached)
		attachHint = true
	case errors.Is(rerr, tasks.ErrNotFollowed):
		// The node could not be followed: as unreachable as a node gets
		// while its restore goes on.
		codes = append(codes, exitUnreachable)
		attachHint = true
		rep.Notes = append(rep.Notes, rerr.Error())
	case errors.Is(rerr, errRunTimeout):
		codes = append(codes, exitTimeout)
	default:
		codes = append(codes, exitInterrupted)
		attachHint = true
	}
	for _, n := range rf.State.Nodes {
		if n.Status == tasks.RestoreRunning || (n.Phase != tasks.PhaseDone && n.Phase != tasks.PhasePlanned) {
			attachHint = true
		}
	}
	code := worstExit(codes...)
	allOK := len(rf.State.Nodes) > 0
	for _, n := range rf.State.Nodes {
		allOK = allOK && n.Status == tasks.RestoreSuccess
	}
	if allOK && rep.RTO != nil {
		s := int64(time.Since(rf.StartedAt) / time.Second)
		rep.RTO.AchievedS = &s
	}
	// 10. Every stage succeeded: DataProtect re-sync and post-operations on
	// the core (each may be skipped by its flag; they say so).
	if allOK && rerr == nil {
		var core transport.Conn
		coreInRun := false
		for i, n := range nodes {
			if n.Core {
				coreInRun = true
				if i < len(conns) {
					core = conns[i]
				}
			}
		}
		popts, err := postOptions(inv, rf, rf.NoResync, rf.NoPost)
		switch {
		case err != nil:
			rep.Notes = append(rep.Notes, "post-operations: "+err.Error())
			codes = append(codes, exitFailed)
		case !coreInRun:
			// A partial restore (--allow-partial) that leaves the core out:
			// the post-operations belong to the core's restore.
			rep.Notes = append(rep.Notes, "post-operations not run: the core node was not part of this partial restore (run prapush post once it is restored)")
		case core == nil:
			rep.Notes = append(rep.Notes, "post-operations: the core node is not connected: run prapush post "+rf.RunID)
			codes = append(codes, exitFailed)
		default:
			stopLive()
			results := tasks.PostOperations(ctx, core, popts, a.postObserver())
			codes = append(codes, a.postCode(rep, nil, results))
			if ctx.Err() != nil {
				codes = append(codes, interruptCode(ctx))
			}
		}
		code = worstExit(codes...)
	}
	if attachHint {
		rep.Notes = append(rep.Notes, "restores may still be running: "+a.attachCommand(rf.RunID))
	}
	a.finish(rep, code)
	stopLive()
	a.printRestore(rep, rf)
	if err := a.writeReport(dir, rep); err != nil {
		return err
	}
	if attachHint {
		fmt.Fprintf(a.env.Stderr, "prapush: hint: follow the run with: %s\n", a.attachCommand(rf.RunID))
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// endRestore writes the report of a restore that changed nothing.
func (a *app) endRestore(dir string, rep *report.Report, code int, print bool) error {
	a.finish(rep, code)
	if print {
		a.printVerify(rep)
	}
	if err := a.writeReport(dir, rep); err != nil {
		return err
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

func planReport(np tasks.NodePlan) *report.Plan {
	return &report.Plan{MenuIndex: np.MenuIndex, MenuLine: np.MenuLine, Tags: nonNil(np.Tags), PartIDs: nonNilInts(np.PartIDs), Stage: np.Stage}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// fillRestore copies every node's run into the report.
func fillRestore(rep *report.Report, rf *runFile) {
	for _, n := range rf.State.Nodes {
		var rn *report.Node
		for i := range rep.Nodes {
			if rep.Nodes[i].Name == n.Plan.Node {
				rn = &rep.Nodes[i]
			}
		}
		if rn == nil {
			rep.Nodes = append(rep.Nodes, report.Node{Name: n.Plan.Node, Stage: n.Plan.Stage, Checks: []report.Check{}})
			rn = &rep.Nodes[len(rep.Nodes)-1]
		}
		rn.Plan = planReport(n.Plan)
		steps := make([]report.Step, 0, len(n.Steps))
		for _, s := range n.Steps {
			steps = append(steps, report.Step{Name: s.Name, Status: s.Status, StartedAt: s.StartedAt, EndedAt: s.EndedAt})
		}
		rn.Restore = &report.Restore{
			Status: n.Status, ExitCode: n.ExitCode, Steps: steps, TagsRestored: nonNil(n.Tagged),
			Log:       filepath.Join(report.DirLogs, n.Plan.Node+".log"),
			RemoteLog: remoteLog(n.Plan),
			StartedAt: n.StartedAt, EndedAt: n.EndedAt,
		}
	}
}

// remoteLog says where the script's own log is on the node (domain §3.6);
// it is not copied: it holds the SW password on a command line.
func remoteLog(np tasks.NodePlan) string {
	if np.Family == tasks.FamilyLegacy {
		return filepath.Base(np.Script) + ".log in " + filepath.Dir(np.Script)
	}
	return filepath.Dir(np.Script) + "/<dd-mm-YYYY-HH-MM-SS>" + filepath.Base(np.Script) + ".log"
}

// pickGeneration lists the restorable generations and reads the choice.
func (a *app) pickGeneration(ctx context.Context, opts tasks.Options) (string, error) {
	sum, _, err := tasks.Generations(ctx, opts)
	if err != nil || sum == nil {
		return "", fmt.Errorf("list generations: %w", errors.Join(err, errors.New("no summary")))
	}
	if len(sum.Restorable) == 0 {
		return "", &exitError{code: exitFailed, err: errors.New("no generation is restorable on every node (see prapush generations)")}
	}
	fmt.Fprintln(a.env.Stdout, "Restorable generations (common to every node):")
	var ids []int
	for _, c := range sum.Common {
		if !c.Restorable {
			continue
		}
		ids = append(ids, c.ID)
		g := c.Generation
		fmt.Fprintf(a.env.Stdout, "  %d) generation %d  %s UTC  %s  %s  %s\n", len(ids), c.ID, g.Time().UTC().Format("2006-01-02 15:04:05"),
			report.SanitizeText(g.DisplayName), g.StatusText(), sizeMB(c.TotalSizeMB))
	}
	fmt.Fprintf(a.env.Stdout, "Choose (1-%d): ", len(ids))
	line, _ := bufio.NewReader(a.env.Stdin).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n < 1 || n > len(ids) {
		return "", usageErr("restore: no generation chosen")
	}
	return strconv.Itoa(ids[n-1]), nil
}

// confirm asks the operator on the terminal.
func (a *app) confirm(rep *report.Report, plan *tasks.Plan, idx []int) bool {
	w := a.env.Stdout
	fmt.Fprintf(w, "\nRestore generation %d (%s) on architecture %s:\n", plan.GenID, report.SanitizeText(plan.Generation.DisplayName), report.SanitizeText(rep.Inventory.Architecture))
	for _, i := range idx {
		np := plan.Nodes[i]
		fmt.Fprintf(w, "  stage %d  %-12s menu %d  %s\n", np.Stage, report.SanitizeText(np.Node), np.MenuIndex, strings.Join(np.Tags, ", "))
	}
	fmt.Fprint(w, "BlueMind will be stopped on these nodes and their data replaced. Type yes to go on: ")
	line, _ := bufio.NewReader(a.env.Stdin).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

func (a *app) printPlan(rep *report.Report) {
	if a.g.output == "json" {
		return
	}
	w := a.env.Stdout
	if rep.Generation != nil {
		fmt.Fprintf(w, "generation %d  %s UTC  %s\n", rep.Generation.ID, rep.Generation.ProtectionTime.Format("2006-01-02 15:04:05"), report.SanitizeText(rep.Generation.DisplayName))
	}
	for _, n := range rep.Nodes {
		if n.Plan == nil {
			continue
		}
		fmt.Fprintf(w, "%-12s stage %d  menu %d  %q  tags %s  parts %v\n", report.SanitizeText(n.Name), n.Plan.Stage, n.Plan.MenuIndex,
			report.SanitizeText(n.Plan.MenuLine), strings.Join(n.Plan.Tags, ","), n.Plan.PartIDs)
	}
}

func (a *app) printRestore(rep *report.Report, rf *runFile) {
	if a.g.output == "json" {
		_ = report.WriteJSON(a.env.Stdout, rep)
		return
	}
	p := painter{on: a.useColor()}
	w := a.env.Stdout
	fmt.Fprintln(w)
	for _, n := range rf.State.Nodes {
		st := n.Status
		switch st {
		case tasks.RestoreSuccess:
			st = p.paint(st, colorGreen...)
		case tasks.RestoreFailed, tasks.RestorePartial:
			st = p.paint(st, colorRed...)
		}
		last := n.LastCompleted()
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(w, "%-12s stage %d  %s steps %d, last completed: %s", report.SanitizeText(n.Plan.Node), n.Plan.Stage, st, len(n.Steps), report.SanitizeText(last))
		if n.ExitCode != nil {
			fmt.Fprintf(w, "  exit %d", *n.ExitCode)
		}
		if n.Reason != "" {
			fmt.Fprintf(w, "  (%s)", report.SanitizeText(n.Reason))
		}
		fmt.Fprintln(w)
	}
	for _, op := range rep.PostOperations {
		fmt.Fprintf(w, "post  %s  %-22s %s\n", p.status(op.Status), op.ID, report.SanitizeText(op.Message))
	}
	fmt.Fprintf(w, "%s %s: exit %d\n", rep.Command, rf.RunID, rep.ExitCode)
}

// restoreObserver prints one node-prefixed line per step and restore
// event (always), and every other event with -v.
func (a *app) restoreObserver() tasks.Observer {
	return &restoreLines{lineObserver: lineObserver{w: a.env.Stdout}, verbose: a.g.verbose, json: a.g.output == "json"}
}

type restoreLines struct {
	lineObserver
	verbose bool
	json    bool
}

func (o *restoreLines) NodeEvent(node, phase, msg string) {
	if o.json || (!o.verbose && phase != "step" && phase != "restore") {
		return
	}
	o.lineObserver.NodeEvent(node, phase, msg)
}

func (o *restoreLines) Check(r tasks.CheckResult) {}

// fileLogs keeps each node's output in logs/<node>.log, appended as it
// arrives.
type fileLogs struct{ dir string }

func (l *fileLogs) path(node string) string { return filepath.Join(l.dir, node+".log") }

func (l *fileLogs) Open(node string) (io.WriteCloser, int64, error) {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	f, err := os.OpenFile(l.path(node), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	return f, fi.Size(), nil
}

func (l *fileLogs) Replay(node string) (io.ReadCloser, error) {
	f, err := os.Open(l.path(node))
	if err != nil {
		return nil, fmt.Errorf("replay log: %w", err)
	}
	return f, nil
}

// writeRun writes state.json atomically.
func writeRun(dir string, rf *runFile) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	f, err := os.CreateTemp(dir, ".state.json.*")
	if err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write run state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, runFileName)); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	return nil
}

// loadRun finds a run's directory (RUN-ID under prapush-reports/, the
// --report-dir when useReportDir, or a directory path) and reads its
// state.json. An empty ref picks the newest run under prapush-reports/.
func (a *app) loadRun(ref string, useReportDir bool) (*runFile, string, error) {
	var cands []string
	switch {
	case ref == "" && useReportDir && a.g.reportDir != "":
		cands = []string{a.g.reportDir}
	case ref == "":
		ents, _ := os.ReadDir("prapush-reports")
		var names []string
		for _, e := range ents {
			if e.IsDir() && fileExists(filepath.Join("prapush-reports", e.Name(), runFileName)) {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		if len(names) == 0 {
			return nil, "", errors.New("no run found under prapush-reports/ (give RUN-ID or --report-dir)")
		}
		cands = []string{filepath.Join("prapush-reports", names[len(names)-1])}
	default:
		cands = []string{filepath.Join("prapush-reports", ref), ref}
		if useReportDir && a.g.reportDir != "" {
			cands = append([]string{a.g.reportDir}, cands...)
		}
	}
	for _, d := range cands {
		b, err := os.ReadFile(filepath.Join(d, runFileName))
		if err != nil {
			continue
		}
		var rf runFile
		if err := json.Unmarshal(b, &rf); err != nil {
			return nil, "", fmt.Errorf("read %s: %w", filepath.Join(d, runFileName), err)
		}
		if rf.Schema != runSchema || rf.State == nil {
			return nil, "", fmt.Errorf("read %s: not a prapush run state", filepath.Join(d, runFileName))
		}
		// The run id names remote paths and units: an edited state.json is
		// refused here, before any node is contacted.
		if err := tasks.CheckRunID(rf.RunID); err != nil {
			return nil, "", fmt.Errorf("read %s: %w", filepath.Join(d, runFileName), err)
		}
		if ref != "" && rf.RunID != ref && filepath.Clean(d) != filepath.Clean(ref) && (!useReportDir || d != a.g.reportDir) {
			continue
		}
		return &rf, d, nil
	}
	return nil, "", fmt.Errorf("run %q not found (looked in %s)", ref, strings.Join(cands, ", "))
}

// attachCommand is the command line that follows run id again: it names the
// inventory and the report directory when they are not the defaults, so
// that it works when pasted as is.
func (a *app) attachCommand(runID string) string {
	args := []string{"prapush"}
	if a.g.inventory != "inventory.toml" {
		args = append(args, "-i", a.g.inventory)
	}
	args = append(args, "attach", runID)
	if a.g.reportDir != "" {
		args = append(args, "--report-dir", a.g.reportDir)
	}
	return transport.Quote(args...)
}
