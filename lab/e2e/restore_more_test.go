package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/prapush/prapush/lab/labtest"
)

// The bm5 script family on the core (which restores no mail/imap part in the
// lab): no HPS step, the ES wait; the restore succeeds on every node, and the
// core really ran the bm5 script.
func TestRestore_Bm5ScriptOnTheCoreSucceedsEverywhere(t *testing.T) {
	lab := fastLabWith(t, "0.05", "core", "VARIANT=bm5")
	dir, r, code, out := restore(t, lab, "restore", "--generation", "latest", "--yes")
	if code != 0 || r.Verdict != "pass" {
		t.Fatalf("exit %d verdict %q, want 0 pass\n%s", code, r.Verdict, out)
	}
	for _, n := range labtest.Nodes {
		if got := r.status(n); got != "success" {
			t.Errorf("%s: restore %q, want success", n, got)
		}
		if gen, _ := lastRestore(t, lab, n); gen != 312 {
			t.Errorf("%s: the script restored generation %d, want 312", n, gen)
		}
	}
	// The family prapush recognised (restore.script passes on bm5 because
	// the core holds no mail part), and the one the script says it is.
	checks := readChecks(t, dir)
	for _, n := range checks.Nodes {
		want := "family bm4-es,"
		if n.Name == "core" {
			want = "family bm5,"
		}
		i := slices.IndexFunc(n.Checks, func(c check) bool { return c.ID == "restore.script" })
		if i < 0 {
			t.Errorf("%s: no restore.script check", n.Name)
		} else if c := n.Checks[i]; c.Status != "pass" || !strings.HasPrefix(c.Message, want) {
			t.Errorf("%s: restore.script %s %q, want pass %q...", n.Name, c.Status, c.Message, want)
		}
	}
	state, err := lab.Exec("core", "cat", "/var/lib/fake-bm-pra/last-restore.json")
	if err != nil || !strings.Contains(state, `"variant": "bm5"`) {
		t.Errorf("core's script state %q (%v): not a bm5 run", state, err)
	}
	var steps []string
	for _, n := range r.Nodes {
		if n.Name == "core" && n.Restore != nil {
			for _, s := range n.Restore.Steps {
				steps = append(steps, s.Name)
			}
		}
	}
	if slices.Contains(steps, "Restoring BlueMind HPS configuration") || !slices.Contains(steps, "Waiting for ES cluster is up") ||
		!slices.Contains(steps, "Restaure DB bj") {
		t.Errorf("core's steps are not bm5's (no HPS, ES wait, bj restored): %q", steps)
	}
}

// The no-host-dir preset: mail's dp_spool/rsync/<ip> is missing, so its
// script would find no data for the host and exit 0 having restored nothing
// (the false success). The gate stops the restore before anything starts:
// exit 1, host.backup_data failed on mail, and on no node a run directory,
// a script run or a BlueMind stop.
func TestRestore_MissingHostDirStopsAtTheGateBeforeAnythingStarts(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "no-host-dir")
	dir, r, code, out := restore(t, lab, "restore", "--generation", "latest", "--yes")
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s", code, out)
	}
	checks := readChecks(t, dir)
	if got := checks.status("mail", "host.backup_data"); got != "fail" {
		t.Errorf("mail host.backup_data %q, want fail\n%s", got, checks.dump())
	}
	if got := checks.status("core", "host.backup_data"); got != "pass" {
		t.Errorf("core host.backup_data %q, want pass", got)
	}
	for _, n := range r.Nodes {
		if n.Restore != nil {
			t.Errorf("%s: the report has a restore: %+v", n.Name, n.Restore)
		}
	}
	for _, n := range labtest.Nodes {
		// `ls -A` of a missing directory fails: an empty answer either way
		// means no run was ever claimed there.
		runs, _ := lab.Exec(n, "sh", "-c", "ls -A /var/lib/prapush/runs 2>/dev/null || true")
		if strings.TrimSpace(runs) != "" {
			t.Errorf("%s: run directories were created: %q", n, runs)
		}
		bmctl, _ := lab.Exec(n, "sh", "-c", "cat /var/log/fake-bm/bmctl.log 2>/dev/null || true")
		if strings.Contains(bmctl, "bmctl stop") {
			t.Errorf("%s: BlueMind was stopped:\n%s", n, bmctl)
		}
		if gen, _ := lastRestore(t, lab, n); gen != 0 {
			t.Errorf("%s: the script ran (restored generation %d)", n, gen)
		}
		if ps := restoreProcesses(t, lab, n); ps != "" {
			t.Errorf("%s: a restore script runs:\n%s", n, ps)
		}
	}
}
