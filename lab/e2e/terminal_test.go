package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/lab/labtest"
)

// The questions prapush asks a person at a terminal, answered through a
// real pseudo-terminal (tmux): hostkeys' confirmation before recording
// keys, and restore's generation picker and confirmation.

// waitFor captures the pane until it shows want, and returns the screen.
func (p *pane) waitFor(want string, limit time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := p.capture()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the terminal never showed %q within %v:\n%s", want, limit, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answer types line and Enter into the pane.
func (p *pane) answer(line string) { p.tmux("send-keys", "-t", "0", line, "Enter") }

// hostkeys on a terminal shows every node's fingerprint and asks before
// recording: "n" records nothing (exit 1), "y" records the three nodes'
// keys (exit 0), after which strict host key checking connects.
func TestHostkeys_OnATerminalAsksBeforeRecording(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	inv := inventoryWithKnownHosts(t, lab, kh)

	p := startPane(t, prapushScriptWith(t, lab, inv, "hostkeys"))
	screen := p.waitFor("[y/N]", time.Minute)
	for _, n := range labtest.Nodes {
		if !strings.Contains(screen, n) {
			t.Errorf("the question comes without %s's fingerprint:\n%s", n, screen)
		}
	}
	p.answer("n")
	screen = p.waitFor("EXIT=", time.Minute)
	if !strings.Contains(screen, "nothing recorded") || !strings.Contains(screen, "EXIT=1") {
		t.Errorf("answering n: want 'nothing recorded' and exit 1:\n%s", screen)
	}
	if _, err := os.Stat(kh); err == nil {
		t.Fatal("known_hosts written although the answer was n")
	}

	p = startPane(t, prapushScriptWith(t, lab, inv, "hostkeys"))
	p.waitFor("[y/N]", time.Minute)
	p.answer("y")
	screen = p.waitFor("EXIT=", time.Minute)
	if !strings.Contains(screen, "recorded 3 key(s)") || !strings.Contains(screen, "EXIT=0") {
		t.Errorf("answering y: want 'recorded 3 key(s)' and exit 0:\n%s", screen)
	}
	if r, code := verify(t, lab, inv); code != 0 {
		t.Errorf("strict verify after the enrolment on a terminal: exit %d\n%s", code, r.dump())
	}

	// mail known only by a key of another type (ECDSA): its Ed25519 key is
	// what a man in the middle would offer, asked about on its own first.
	kh2 := filepath.Join(t.TempDir(), "known_hosts")
	key := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(pub))
	if err := os.WriteFile(kh2, []byte(lab.IP(t, "mail")+" "+fields[0]+" "+fields[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv2 := inventoryWithKnownHosts(t, lab, kh2)
	p = startPane(t, prapushScriptWith(t, lab, inv2, "hostkeys"))
	screen = p.waitFor("Record them? [y/N]", time.Minute)
	if !strings.Contains(screen, "NEWTYPE") || !strings.Contains(screen, "1 host(s) already known by OTHER key types") {
		t.Errorf("mail's new key type is not singled out:\n%s", screen)
	}
	p.answer("n")
	p.waitFor("Record 2 new key(s) in known_hosts? [y/N]", time.Minute)
	p.answer("y")
	screen = p.waitFor("EXIT=", time.Minute)
	// The other two are recorded; mail's refused key is not, and the run
	// says so with exit 3.
	if !strings.Contains(screen, "recorded 2 key(s)") || !strings.Contains(screen, "EXIT=3") {
		t.Errorf("NEWTYPE refused, the others accepted: want 'recorded 2 key(s)' and exit 3:\n%s", screen)
	}
	b, _ := os.ReadFile(kh2)
	if strings.Count(string(b), lab.IP(t, "mail")+" ") != 1 {
		t.Errorf("mail's refused key was recorded:\n%s", b)
	}
}

// restore on a terminal without --generation lists the restorable
// generations and asks which; then shows the plan and asks for "yes".
// Anything else changes nothing (exit 130); "yes" restores the generation
// picked on every node.
func TestRestore_OnATerminalPicksTheGenerationThenAsksForYes(t *testing.T) {
	lab := fastLab(t, "0.05")
	dir := t.TempDir()

	p := startPane(t, prapushScript(t, lab, "restore", "--report-dir", filepath.Join(dir, "declined")))
	screen := p.waitFor("Choose (1-3): ", 2*time.Minute)
	for _, id := range []string{"generation 310", "generation 311", "generation 312"} {
		if !strings.Contains(screen, id) {
			t.Errorf("the picker does not list %s:\n%s", id, screen)
		}
	}
	p.answer("2")
	screen = p.waitFor("Type yes to go on: ", 2*time.Minute)
	if !strings.Contains(screen, "Restore generation 311") {
		t.Errorf("the confirmation is not about generation 311, the one picked:\n%s", screen)
	}
	p.answer("no")
	screen = p.waitFor("EXIT=", time.Minute)
	if !strings.Contains(screen, "EXIT=130") {
		t.Errorf("declined: want exit 130:\n%s", screen)
	}
	for _, n := range labtest.Nodes {
		if gen, _ := lastRestore(t, lab, n); gen != 0 {
			t.Errorf("%s: generation %d restored although the answer was no", n, gen)
		}
	}

	p = startPane(t, prapushScript(t, lab, "restore", "--report-dir", filepath.Join(dir, "confirmed")))
	p.waitFor("Choose (1-3): ", 2*time.Minute)
	p.answer("2")
	p.waitFor("Type yes to go on: ", 2*time.Minute)
	p.answer("yes")
	screen = p.waitFor("EXIT=", 3*time.Minute)
	if !strings.Contains(screen, "EXIT=0") {
		t.Errorf("confirmed: want exit 0:\n%s", screen)
	}
	for _, n := range labtest.Nodes {
		if gen, finished := lastRestore(t, lab, n); gen != 311 || finished == "" {
			t.Errorf("%s: last restore generation %d finished %q, want 311 finished", n, gen, finished)
		}
	}
}
