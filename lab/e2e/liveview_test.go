package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/internal/testenv"
	"github.com/prapush/prapush/lab/labtest"
)

// pane is a tmux session on a private server running one command in a
// real pseudo-terminal, so prapush sees a terminal on stdout.
type pane struct {
	t    *testing.T
	sock string
}

// startPane runs script (sh) in a new 120x50 tmux pane. The pane stays
// open after the script so that its final screen can be captured.
func startPane(t *testing.T, script string) *pane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		testenv.SkipOrFail(t, "tmux not installed")
	}
	dir := t.TempDir()
	p := &pane{t: t, sock: filepath.Join(dir, "tmux.sock")}
	run := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(run, []byte(script+"\necho EXIT=$?\nexec sleep 3600\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	p.tmux("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "50", "sh", run)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// capture returns the pane's screen and scrollback, without colours.
func (p *pane) capture() string { return p.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "0") }

// follow captures the pane until the script has ended and returns every
// capture taken while it ran, and the final one.
func (p *pane) follow(limit time.Duration) (running []string, final string) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := p.capture()
		if strings.Contains(s, "EXIT=") {
			return running, s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the command did not end within %v; pane:\n%s", limit, s)
		}
		running = append(running, s)
		time.Sleep(100 * time.Millisecond)
	}
}

// liveLine matches a node's line of the live view: name, stage, elapsed.
func liveLine(node string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + node + `\s+stage \d+\s+(\d+\.\d+s|\d+s|\d+m\d\ds|\d+h\d\dm\d\ds|-)\s+(\S+)`)
}

// prapushScript is a shell line running prapush in a clean environment:
// no agent, no user ssh config, a terminal type that can move the cursor.
func prapushScript(t *testing.T, lab *labtest.Lab, args ...string) string {
	return prapushScriptWith(t, lab, lab.InventoryPath(), args...)
}

// prapushScriptWith is prapushScript with another inventory.
func prapushScriptWith(t *testing.T, lab *labtest.Lab, inv string, args ...string) string {
	home := t.TempDir()
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return fmt.Sprintf("cd %s && env -i PATH=/usr/bin:/bin HOME=%s TERM=xterm-256color SSH_AUTH_SOCK= %s -i %s %s",
		home, home, lab.PrapushPath(t), inv, strings.Join(q, " "))
}

// checkOneLinePerNode fails unless every node has exactly one live line in
// screen (scrollback included): the view redraws in place, it never
// appends a new frame below the old one.
func checkOneLinePerNode(t *testing.T, screen string, allowMissing bool) map[string]string {
	t.Helper()
	states := map[string]string{}
	for _, node := range labtest.Nodes {
		m := liveLine(node).FindAllStringSubmatch(screen, -1)
		switch {
		case len(m) == 0 && allowMissing:
		case len(m) != 1:
			t.Errorf("%d live lines for %s, want exactly 1:\n%s", len(m), node, screen)
		default:
			states[node] = m[0][2]
		}
	}
	return states
}

func TestLiveView_VerifyOnATerminalShowsOneLinePerNodeThenTheSummary(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	p := startPane(t, prapushScript(t, lab, "verify", "--report-dir", filepath.Join(t.TempDir(), "report")))
	running, final := p.follow(2 * time.Minute)
	for _, s := range running {
		checkOneLinePerNode(t, s, true)
	}
	states := checkOneLinePerNode(t, final, false)
	for node, st := range states {
		if st != "pass" {
			t.Errorf("%s: live line ends as %q, want pass", node, st)
		}
	}
	for _, want := range []string{"verify: READY (exit 0)", "EXIT=0"} {
		if !strings.Contains(final, want) {
			t.Errorf("final screen lacks %q:\n%s", want, final)
		}
	}
	// The summary table comes after the live lines, one row per node.
	live := strings.Index(final, "\ncore ")
	for _, node := range labtest.Nodes {
		row := regexp.MustCompile(`(?m)^` + node + `\s+stage \d+\s+pass\s+\d+ pass, 0 warn, 0 fail`).FindStringIndex(final)
		if row == nil {
			t.Errorf("no summary row for %s:\n%s", node, final)
		} else if row[0] < live {
			t.Errorf("%s's summary row is above the live view:\n%s", node, final)
		}
	}
	if strings.Contains(final, "\x1b") {
		t.Errorf("raw escape on the screen:\n%q", final)
	}
}

func TestLiveView_RestoreOnATerminalFollowsEveryNodeInPlace(t *testing.T) {
	lab := fastLab(t, "0.2") // long enough to watch, short enough for a test
	p := startPane(t, prapushScript(t, lab, "restore", "--generation", "latest", "--yes", "--report-dir", filepath.Join(t.TempDir(), "report")))
	running, final := p.follow(5 * time.Minute)

	sawRunning := false
	for _, s := range running {
		for _, st := range checkOneLinePerNode(t, s, true) {
			sawRunning = sawRunning || st == "running"
		}
		if t.Failed() {
			break
		}
	}
	if !sawRunning {
		t.Errorf("no capture during the run showed a node running (%d captures); last:\n%s", len(running), lastOf(running))
	}
	states := checkOneLinePerNode(t, final, false)
	for _, node := range labtest.Nodes {
		if states[node] != "success" {
			t.Errorf("%s: live line ends as %q, want success:\n%s", node, states[node], final)
		}
		if !regexp.MustCompile(`(?m)^` + node + `\s+stage \d+\s+success steps \d+, last completed: Starting BlueMind services`).MatchString(final) {
			t.Errorf("no summary row for %s:\n%s", node, final)
		}
	}
	if !strings.Contains(final, "EXIT=0") {
		t.Errorf("restore did not exit 0:\n%s", final)
	}
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
