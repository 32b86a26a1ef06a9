package tasks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// shellConn runs commands with a local shell: the run directory scripts,
// the detached wrapper (setsid, FIFOs, tail --pid) run for real, without
// SSH.
type shellConn struct {
	shell string
	path  string // PATH, with the test's fake bmctl
}

func (c *shellConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	x := exec.CommandContext(ctx, c.shell, "-c", cmd)
	x.Env = []string{"PATH=" + c.path, "LC_ALL=C"}
	x.Stdin, x.Stdout, x.Stderr = stdin, stdout, stderr
	// The command runs as "sh -c '...'" under the login shell: cancelling
	// must end the whole group, as closing an SSH session does, or the
	// inner shell keeps the output pipe open.
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
	x.WaitDelay = 5 * time.Second
	err := x.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return &transport.ExitError{Status: ee.ExitCode()}
	}
	return err
}

func (c *shellConn) ReadFile(_ context.Context, p string) ([]byte, error) { return os.ReadFile(p) }
func (c *shellConn) Upload(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("no upload")
}
func (c *shellConn) Close() error { return nil }

// fakeScript is a restore script in sh: the bm4 menu, one read (EOF is a
// failure here: prapush must keep the writer open), steps, and HANG to spin
// forever on the last step.
const fakeScript = `menu() { printf '1\t2025-03-12 23:30:02\t4.8.1\tstatus: OK2\t2025-03-13 23:30:03\t4.8.2\tstatus: OK\nChoose backup generation to restore (1-2): \n'; }
step() { printf '\r%s -' "$1"; sleep 0.05; printf '\r%s \\' "$1"; printf '\r%s OK\n' "$1"; }
menu
while :; do
  if ! IFS= read -r line; then echo "EOF on stdin" >&2; exit 99; fi
  [ "$line" = 2 ] && break
  menu
done
printf 'This server is tagged as bm/conf\n\n**** RESTORE COMMON CONFIGURATION ****\n'
step "Restoring BlueMind Node configuration"
if [ -e HANG ]; then
  sleep 600 &
  while :; do printf '\r%s -' "Waiting for ES cluster is up"; sleep 0.05; done
fi
printf '\n**** STARTING BLUEMIND SERVICES ****\n'
step "Starting BlueMind Node service"
step "Starting BlueMind services"
`

type localRun struct {
	runs, scriptDir, logs string
	opts                  RestoreOptions
}

func newLocalRun(t *testing.T, shell string) *localRun {
	t.Helper()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	dir := t.TempDir()
	lr := &localRun{runs: filepath.Join(dir, "lib", "runs"), scriptDir: filepath.Join(dir, "bm-node"), logs: filepath.Join(dir, "logs")}
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{lr.scriptDir, lr.logs, bin} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lr.scriptDir, "bm-pra-restore.py"), []byte(fakeScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "bmctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shPath, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	conn := &shellConn{shell: shell, path: "/usr/bin:/bin:" + bin}
	st := &RunState{RunID: "20250101T000000Z-10ca1000", Generation: 312, Nodes: []NodeRun{{Plan: NodePlan{
		Node: "local", Stage: 1, MenuIndex: 2, MenuLine: "2\t2025-03-13 23:30:03\t4.8.2\tstatus: OK",
		Family: FamilyBM4ES, Tags: []string{"bm/conf"}, Python: shPath, Script: filepath.Join(lr.scriptDir, "bm-pra-restore.py"),
	}}}}
	lr.opts = RestoreOptions{State: st, Nodes: []inventory.Node{{Name: "local", Stage: 1}}, Conns: []transport.Conn{conn},
		Logs: dirLogs{lr.logs}, RunsRoot: lr.runs, MenuTimeout: time.Minute, noProcCheck: true}
	t.Cleanup(func() { lr.killGroup() })
	return lr
}

func (lr *localRun) runDir() string { return filepath.Join(lr.runs, lr.opts.State.RunID) }

func (lr *localRun) pgid() int {
	b, _ := os.ReadFile(filepath.Join(lr.runDir(), "pgid"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// killGroup stops what a failed test left running.
func (lr *localRun) killGroup() {
	if g := lr.pgid(); g > 1 {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
}

func TestRunDir_RealShellsRunTheDetachedScriptToSuccess(t *testing.T) {
	for _, shell := range []string{"dash", "bash"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skip(shell + " not installed")
			}
			lr := newLocalRun(t, shell)
			if err := Restore(context.Background(), lr.opts); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			n := lr.opts.State.Nodes[0]
			if n.Status != RestoreSuccess {
				t.Fatalf("status %s (%s)", n.Status, n.Reason)
			}
			fi, err := os.Stat(lr.runDir())
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("run dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
			}
			for _, f := range []string{"pid", "pgid", "starttime", "bootid", "output", "input", "exit", "plan"} {
				if _, err := os.Stat(filepath.Join(lr.runDir(), f)); err != nil {
					t.Errorf("run dir lacks %s: %v", f, err)
				}
			}
			local, _ := os.ReadFile(filepath.Join(lr.logs, "local.log"))
			remote, _ := os.ReadFile(filepath.Join(lr.runDir(), "output"))
			if !bytes.Equal(local, remote) || !bytes.HasSuffix(local, []byte("Starting BlueMind services OK\n")) {
				t.Errorf("local log differs from the output:\n%q\n%q", local, remote)
			}
		})
	}
}

func TestRunDir_AStepOverItsLimitKillsTheWholeProcessGroup(t *testing.T) {
	lr := newLocalRun(t, "sh")
	if err := os.WriteFile(filepath.Join(lr.scriptDir, "HANG"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	lr.opts.Nodes[0].StepTimeouts = map[string]time.Duration{"Waiting for ES cluster is up": 300 * time.Millisecond}
	if err := Restore(context.Background(), lr.opts); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	n := lr.opts.State.Nodes[0]
	if n.Status != RestorePartial || n.TimeoutWhat != "Waiting for ES cluster is up" {
		t.Fatalf("node %s %q (%s)", n.Status, n.TimeoutWhat, n.Reason)
	}
	g := lr.pgid()
	if g <= 1 {
		t.Fatal("no pgid recorded")
	}
	// kill -0 on the group: no process of it (the script, its sleep) is left.
	if err := syscall.Kill(-g, 0); !errors.Is(err, syscall.ESRCH) {
		ps, _ := exec.Command("ps", "-eo", "pid,ppid,pgid,stat,args").Output()
		t.Errorf("process group %d still has processes (kill -0: %v):\n%s", g, err, ps)
	}
	if b, _ := os.ReadFile(filepath.Join(lr.runDir(), "exit")); strings.TrimSpace(string(b)) != "killed" {
		t.Errorf("exit status %q, want killed", b)
	}
}

func TestRunDir_ASecondClaimOnTheNodeIsBusy(t *testing.T) {
	lr := newLocalRun(t, "sh")
	conn := lr.opts.Conns[0]
	var out strings.Builder
	if err := conn.Run(context.Background(), claimCmd(lr.runs, "run-a", lr.opts.State.Nodes[0].Plan, false).Line, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "@@prapush pid ") {
		t.Fatalf("first claim: %s", out.String())
	}
	t.Cleanup(func() {
		_ = conn.Run(context.Background(), runCtlCmd(lr.runs, "run-a", "cancel").Line, nil, io.Discard, nil)
	})
	out.Reset()
	if err := conn.Run(context.Background(), claimCmd(lr.runs, "run-b", lr.opts.State.Nodes[0].Plan, false).Line, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "@@prapush busy ") || !strings.Contains(out.String(), "run-a") {
		t.Fatalf("second claim was not refused: %s", out.String())
	}
	// Claiming its own run again (the workstation died after claiming) is
	// not busy.
	out.Reset()
	if err := conn.Run(context.Background(), claimCmd(lr.runs, "run-a", lr.opts.State.Nodes[0].Plan, false).Line, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "@@prapush pid ") {
		t.Fatalf("claiming its own run again: %s", out.String())
	}
	// Cancelled, the run releases the node.
	out.Reset()
	_ = conn.Run(context.Background(), runCtlCmd(lr.runs, "run-a", "cancel").Line, nil, &out, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(lr.runs, "run-a", "exit")); err == nil && strings.TrimSpace(string(b)) == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled run never wrote its exit status")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answerCounter counts the answers the node says it wrote into the
// script's stdin.
type answerCounter struct {
	transport.Conn
	mu            sync.Mutex
	sent, already int
}

func (c *answerCounter) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if !strings.Contains(cmd, `/input"`) {
		return c.Conn.Run(ctx, cmd, stdin, stdout, stderr)
	}
	var out strings.Builder
	err := c.Conn.Run(ctx, cmd, stdin, io.MultiWriter(stdout, &out), stderr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.Contains(out.String(), "@@prapush sent ") {
		c.sent++
	}
	if strings.Contains(out.String(), "@@prapush already ") {
		c.already++
	}
	return err
}

func TestRunDir_AnAnswerNotRecordedLocallyIsNotSentTwice(t *testing.T) {
	for _, proof := range []string{"answered file", "output after the prompt"} {
		t.Run(proof, func(t *testing.T) {
			lr := newLocalRun(t, "sh")
			ac := &answerCounter{Conn: lr.opts.Conns[0]}
			lr.opts.Conns[0] = ac
			lr.opts.Detach = true
			if err := Restore(context.Background(), lr.opts); !errors.Is(err, ErrDetached) {
				t.Fatalf("Restore = %v, want ErrDetached", err)
			}
			// The workstation died after the answer, before it saved the
			// phase.
			lr.opts.State.Nodes[0].Phase = PhaseStarted
			if proof == "output after the prompt" {
				// It died between writing the answer and its answered file:
				// only the script's output shows the answer.
				if err := os.Remove(filepath.Join(lr.runDir(), "answered")); err != nil {
					t.Fatal(err)
				}
				// And the script ended meanwhile.
				deadline := time.Now().Add(10 * time.Second)
				for {
					if _, err := os.Stat(filepath.Join(lr.runDir(), "exit")); err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the script never ended")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			lr.opts.Detach = false
			if err := Restore(context.Background(), lr.opts); err != nil {
				t.Fatalf("attach: %v", err)
			}
			if n := lr.opts.State.Nodes[0]; n.Status != RestoreSuccess {
				t.Fatalf("status %s (%s)", n.Status, n.Reason)
			}
			if ac.sent != 1 || ac.already != 1 {
				t.Errorf("answers written %d, refused as already answered %d; want 1 and 1", ac.sent, ac.already)
			}
		})
	}
}
