package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prapush/prapush/lab/labtest"
)

// failBmctlStop makes "bmctl stop" fail on node (every other bmctl call
// goes to the fake).
const failBmctlStop = `mv /usr/bin/bmctl /usr/bin/bmctl.real &&
printf '#!/bin/sh\nif [ "$1" = stop ]; then echo "bmctl: cannot stop bm-core" >&2; exit 1; fi\nexec /usr/bin/bmctl.real "$@"\n' >/usr/bin/bmctl &&
chmod 755 /usr/bin/bmctl`

// A node where BlueMind cannot be stopped must not see the other nodes
// restored while it runs: no script starts anywhere, every waiting run is
// cancelled (no lock left: the next restore is not busy), exit 1.
func TestRestore_BmctlStopFailingOnOneNodeRestoresNothingAndLeavesNoLock(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	lab.Change(t, "mail", failBmctlStop)
	r, code := runRestore(t, lab)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, n := range r.Nodes {
		if n.Restore == nil || n.Restore.Status != "not-started" {
			t.Errorf("%s: restore %+v, want not-started", n.Name, n.Restore)
		}
	}
	notes := strings.Join(r.Notes, "\n")
	if !strings.Contains(notes, "could not be stopped on mail") || !strings.Contains(notes, "cannot stop bm-core") {
		t.Errorf("the notes do not say why nothing started:\n%s", notes)
	}
	for _, node := range labtest.Nodes {
		// Every run directory of the node: never started, cancelled.
		out, err := lab.Exec(node, "sh", "-c", `for d in /var/lib/prapush/runs/*/; do [ -e "$d/started" ] && echo "started $d"; echo "exit $(cat "$d/exit" 2>/dev/null)"; done`)
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if strings.Contains(out, "started ") || !strings.Contains(out, "exit cancelled") || strings.Count(out, "exit ") != strings.Count(out, "exit cancelled") {
			t.Errorf("%s: run directories not all cancelled before starting:\n%s", node, out)
		}
	}
	// No lock left: with bmctl fixed, a restore is not busy (exit 5).
	lab.Change(t, "mail", "mv /usr/bin/bmctl.real /usr/bin/bmctl")
	if _, code := runRestore(t, lab, "--dry-run"); code != 0 {
		t.Errorf("dry run after the aborted restore: exit %d, want 0", code)
	}
}

// Attach decides from the nodes, not from the local log: a log that two
// followers appended to (the menu and its prompt twice) kills nothing, and
// a menu answered before the workstation saved it is not answered again.
func TestRestore_AttachWithADuplicatedLogAndAnUnsavedAnswerFinishesHealthy(t *testing.T) {
	lab := fastLab(t, "0.2")
	dir, _, code, _ := restore(t, lab, "restore", "--generation", "latest", "--yes", "--detach")
	if code != 6 {
		t.Fatalf("exit %d, want 6", code)
	}
	log := filepath.Join(dir, "logs", "mail.log")
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "Choose backup generation") {
		t.Fatalf("mail.log (%v):\n%s", err, b)
	}
	if err := os.WriteFile(log, append(b, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	// The workstation died after answering files' menu, before saving it.
	statePath := filepath.Join(dir, "state.json")
	sb, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(sb, &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range st["state"].(map[string]any)["nodes"].([]any) {
		n := n.(map[string]any)
		if n["plan"].(map[string]any)["node"] == "files" && n["phase"] == "answered" {
			n["phase"], found = "started", true
		}
	}
	if !found {
		t.Fatalf("files is not answered in state.json:\n%s", sb)
	}
	if sb, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath, sb, 0o600); err != nil {
		t.Fatal(err)
	}
	_, out := attachToTheEnd(t, lab, lab.InventoryPath(), dir)
	if !strings.Contains(out, "already answered") {
		t.Errorf("files' menu was not recognised as answered on the node:\n%s", out)
	}
}
