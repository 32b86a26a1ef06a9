package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	_ "time/tzdata" // the nodes' zones, whatever the host has installed

	"github.com/prapush/prapush/lab/labtest"
)

// restoreReport is the part of report.json the restore tests read.
type restoreReport struct {
	Verdict    string `json:"verdict"`
	ExitCode   int    `json:"exit_code"`
	Generation *struct {
		ID int `json:"id"`
	} `json:"generation"`
	Nodes []struct {
		Name string `json:"name"`
		Plan *struct {
			MenuIndex int      `json:"menu_index"`
			MenuLine  string   `json:"menu_line"`
			PartIDs   []int    `json:"part_ids"`
			Tags      []string `json:"tags"`
		} `json:"plan"`
		Restore *struct {
			Status       string   `json:"status"`
			TagsRestored []string `json:"tags_restored"`
			ExitCode     *int     `json:"exit_code"`
			Steps        []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"steps"`
			StartedAt time.Time `json:"started_at"`
			EndedAt   time.Time `json:"ended_at"`
		} `json:"restore"`
	} `json:"nodes"`
	Notes []string `json:"notes"`
}

func runRestore(t *testing.T, lab *labtest.Lab, args ...string) (*restoreReport, int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "report")
	args = append([]string{"-i", lab.InventoryPath(), "restore", "--generation", "latest", "--yes", "-o", "json", "--report-dir", dir}, args...)
	stdout, stderr, code := lab.Prapush(t, args...)
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("restore wrote no report.json (exit %d): %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	var r restoreReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report.json: %v\n%s", err, b)
	}
	if r.ExitCode != code {
		t.Errorf("report exit_code %d, process exit code %d", r.ExitCode, code)
	}
	if t.Failed() || code != 0 {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	return &r, code
}

// The nodes run in Europe/Paris, UTC and America/New_York, and the newest
// generation was taken at 23:30 UTC: three different dates in the menus,
// one generation and one menu index.
func TestRestoreDryRun_PicksTheSameGenerationWhateverTheNodesTimeZone(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	r, code := runRestore(t, lab, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run exit %d, want 0", code)
	}
	if r.Generation == nil || r.Generation.ID != 312 {
		t.Fatalf("generation %+v, want 312 (the newest complete one)", r.Generation)
	}
	zones := map[string]string{"core": "Europe/Paris", "mail": "UTC", "files": "America/New_York"}
	taken := time.Date(2025, 3, 14, 23, 30, 2, 0, time.UTC)
	for _, n := range r.Nodes {
		if n.Plan == nil {
			t.Fatalf("%s: no plan", n.Name)
		}
		if n.Plan.MenuIndex != 3 {
			t.Errorf("%s: menu index %d, want 3", n.Name, n.Plan.MenuIndex)
		}
		loc, err := time.LoadLocation(zones[n.Name])
		if err != nil {
			t.Fatal(err)
		}
		want := "3\t" + taken.In(loc).Format("2006-01-02 15:04:05") + "\t4.8.2\tstatus: OK"
		if n.Plan.MenuLine != want {
			t.Errorf("%s: menu line %q, want %q (node time zone %s)", n.Name, n.Plan.MenuLine, want, zones[n.Name])
		}
		if n.Restore != nil {
			t.Errorf("%s: a dry run restored: %+v", n.Name, n.Restore)
		}
	}
	// Nothing ran on the nodes: the fake script writes its state file on success.
	for _, node := range labtest.Nodes {
		if out, err := lab.Exec(node, "test", "-e", "/var/lib/fake-bm-pra/last-restore.json"); err == nil {
			t.Errorf("%s: the dry run ran the restore script %s", node, out)
		}
	}
}

func TestRestore_RestoresTheNewestGenerationOnEveryNode(t *testing.T) {
	lab := fastLab(t, "0.05") // the fake's steps, not the test, set the pace
	r, code := runRestore(t, lab)
	if code != 0 || r.Verdict != "pass" {
		t.Fatalf("restore exit %d verdict %q, want 0 pass", code, r.Verdict)
	}
	// Safe order: the core (stage 2) starts once the data nodes ended.
	var coreStart, dataEnd time.Time
	for _, n := range r.Nodes {
		if n.Restore == nil {
			continue
		}
		if n.Name == "core" {
			coreStart = n.Restore.StartedAt
		} else if n.Restore.EndedAt.After(dataEnd) {
			dataEnd = n.Restore.EndedAt
		}
	}
	if !coreStart.After(dataEnd) {
		t.Errorf("core started at %s, before the data nodes ended (%s)", coreStart, dataEnd)
	}
	for _, n := range r.Nodes {
		if n.Restore == nil || n.Restore.Status != "success" {
			t.Errorf("%s: restore %+v, want success", n.Name, n.Restore)
			continue
		}
		if last := n.Restore.Steps[len(n.Restore.Steps)-1]; last.Name != "Starting BlueMind services" || last.Status != "ok" || n.Restore.ExitCode == nil || *n.Restore.ExitCode != 0 {
			t.Errorf("%s: last step %+v exit %v, want Starting BlueMind services ok, exit 0", n.Name, last, n.Restore.ExitCode)
		}
		// What the fake script itself recorded on the node.
		out, err := lab.Exec(n.Name, "cat", "/var/lib/fake-bm-pra/last-restore.json")
		if err != nil {
			t.Errorf("%s: %v", n.Name, err)
			continue
		}
		var state struct {
			GenerationID int      `json:"generationId"`
			HostIP       string   `json:"hostIp"`
			Tags         []string `json:"tags"`
		}
		if err := json.Unmarshal([]byte(out), &state); err != nil {
			t.Fatalf("%s: state file %q: %v", n.Name, out, err)
		}
		if state.GenerationID != 312 || state.HostIP != lab.IP(t, n.Name) {
			t.Errorf("%s: the script restored generation %d as %s, want 312 as %s", n.Name, state.GenerationID, state.HostIP, lab.IP(t, n.Name))
		}
		got, want := slices.Sorted(slices.Values(state.Tags)), slices.Sorted(slices.Values(n.Restore.TagsRestored))
		if !slices.Equal(got, want) || !slices.Contains(got, "bm/conf") {
			t.Errorf("%s: script restored %s, report says %s", n.Name, strings.Join(got, ","), strings.Join(want, ","))
		}
	}
}

func (r *restoreReport) status(node string) string {
	for _, n := range r.Nodes {
		if n.Name == node && n.Restore != nil {
			return n.Restore.Status
		}
	}
	return ""
}

func readRestoreReport(t *testing.T, dir string) *restoreReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("no report.json: %v", err)
	}
	var r restoreReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	return &r
}

// fastLab resets the lab and makes every step take seconds (s each tick).
func fastLab(t *testing.T, seconds string) *labtest.Lab { return fastLabWith(t, seconds, "") }

// fastLabWith is fastLab with node recreated with settings first ("" =
// none), e.g. another script family.
func fastLabWith(t *testing.T, seconds, node string, settings ...string) *labtest.Lab {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	if node != "" {
		lab.Recreate(t, node, settings...)
	}
	for _, n := range labtest.Nodes {
		lab.SetKnob(t, n, "STEP_SECONDS", seconds)
	}
	return lab
}

// restore runs prapush restore with args and returns the report dir, its
// report and the exit code.
func restore(t *testing.T, lab *labtest.Lab, args ...string) (string, *restoreReport, int, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "report")
	all := append([]string{"-i", lab.InventoryPath(), "--report-dir", dir}, args...)
	stdout, stderr, code := lab.Prapush(t, all...)
	out := stdout + "\n" + stderr
	t.Logf("prapush %s: exit %d\n%s", strings.Join(args, " "), code, out)
	return dir, readRestoreReport(t, dir), code, out
}

// lastRestore reads the fake script's STATE_FILE on node ("" = none).
func lastRestore(t *testing.T, lab *labtest.Lab, node string) (gen int, finished string) {
	t.Helper()
	out, err := lab.Exec(node, "cat", "/var/lib/fake-bm-pra/last-restore.json")
	if err != nil {
		return 0, ""
	}
	var s struct {
		GenerationID int    `json:"generationId"`
		FinishedAt   string `json:"finishedAt"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%s: last-restore.json: %v\n%s", node, err, out)
	}
	return s.GenerationID, s.FinishedAt
}

func restoreProcesses(t *testing.T, lab *labtest.Lab, node string) string {
	out, _ := lab.Exec(node, "sh", "-c", "ps -eo pid,args | grep '[b]m-pra-restore' || true")
	return strings.TrimSpace(out)
}

func TestRestore_FailedStepStopsTheNextStageThenResumeFinishes(t *testing.T) {
	lab := fastLab(t, "0.05")
	lab.SetKnob(t, "files", "FAIL_STEP", "Restoring BlueMind filehosting directory")
	lab.SetKnob(t, "files", "FAIL_RC", "3")
	dir, r, code, out := restore(t, lab, "restore", "--generation", "latest", "--yes")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if got := r.status("files"); got != "failed" {
		t.Errorf("files: %q, want failed", got)
	}
	for _, n := range r.Nodes {
		if n.Name != "files" || n.Restore == nil {
			continue
		}
		if n.Restore.ExitCode == nil || *n.Restore.ExitCode != 3 {
			t.Errorf("files: exit code %v, want 3", n.Restore.ExitCode)
		}
		last := n.Restore.Steps[len(n.Restore.Steps)-1]
		if last.Name != "Restoring BlueMind filehosting directory" || last.Status != "fail" {
			t.Errorf("files: last step %+v, want the failed one", last)
		}
	}
	if got := r.status("mail"); got != "success" {
		t.Errorf("mail (same stage) %q, want success: the others of a stage finish", got)
	}
	if got := r.status("core"); got != "not-started" {
		t.Errorf("core %q, want not-started", got)
	}
	if gen, _ := lastRestore(t, lab, "core"); gen != 0 {
		t.Errorf("core restored generation %d although its stage must not start", gen)
	}
	if !strings.Contains(out, "Restoring BlueMind filehosting directory") {
		t.Errorf("output does not name the failed step")
	}
	_, mailDone := lastRestore(t, lab, "mail")

	lab.SetKnob(t, "files", "FAIL_STEP", "")
	_, r2, code, _ := restore(t, lab, "restore", "--resume", dir, "--yes")
	if code != 0 {
		t.Fatalf("resume: exit %d, want 0", code)
	}
	for _, n := range labtest.Nodes {
		if got := r2.status(n); got != "success" {
			t.Errorf("after resume %s: %q, want success", n, got)
		}
		if gen, _ := lastRestore(t, lab, n); gen != r.Generation.ID {
			t.Errorf("%s: generation %d, want %d", n, gen, r.Generation.ID)
		}
	}
	if _, again := lastRestore(t, lab, "mail"); again != mailDone {
		t.Errorf("resume restored mail again (%s then %s): only failed and not-started nodes", mailDone, again)
	}
}

func TestRestore_HangingStepOverItsLimitExitsFourNamingIt(t *testing.T) {
	lab := fastLab(t, "0.05")
	lab.SetKnob(t, "mail", "HANG_STEP", "Restaure DB bj-data")
	_, r, code, out := restore(t, lab, "restore", "--generation", "latest", "--yes", "--step-timeout", "3s")
	if code != 4 {
		t.Errorf("exit %d, want 4", code)
	}
	if !strings.Contains(out, `"Restaure DB bj-data" exceeded its limit`) {
		t.Errorf("output does not name the step over its limit")
	}
	if got := r.status("mail"); got != "partial" {
		t.Errorf("mail %q, want partial", got)
	}
	if got := r.status("files"); got != "success" {
		t.Errorf("files %q, want success (same stage finishes)", got)
	}
	if got := r.status("core"); got != "not-started" {
		t.Errorf("core %q, want not-started", got)
	}
	if ps := restoreProcesses(t, lab, "mail"); ps != "" {
		t.Errorf("the script's process group is still running on mail:\n%s", ps)
	}
}

// startRestore starts prapush restore in the background.
func startRestore(t *testing.T, lab *labtest.Lab, dir string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(lab.PrapushPath(t), append([]string{"-i", lab.InventoryPath(), "--report-dir", dir}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "HOME="+cmd.Dir, "NO_COLOR=1", "PRAPUSH_INVENTORY=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &out
}

// waitState waits until the run's state.json shows every node of names in
// phase (polling a local file; the run itself is on the nodes).
func waitState(t *testing.T, dir, phase string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err == nil {
			var s struct {
				State struct {
					Nodes []struct {
						Plan  struct{ Node string } `json:"plan"`
						Phase string                `json:"phase"`
					} `json:"nodes"`
				} `json:"state"`
			}
			if json.Unmarshal(b, &s) == nil {
				ok := 0
				for _, n := range s.State.Nodes {
					for _, want := range names {
						if n.Plan.Node == want && n.Phase == phase {
							ok++
						}
					}
				}
				if ok == len(names) {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("state.json never showed %v in phase %q", names, phase)
}

func TestRestore_AttachCompletesARunWhoseWorkstationWasKilled(t *testing.T) {
	lab := fastLab(t, "0.2")
	dir := filepath.Join(t.TempDir(), "report")
	cmd, out := startRestore(t, lab, dir, "restore", "--generation", "latest", "--yes")
	waitState(t, dir, "answered", "mail", "files")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Logf("killed during stage 1:\n%s", out)
	stdout, stderr, code := lab.Prapush(t, "-i", lab.InventoryPath(), "--report-dir", dir, "attach")
	t.Logf("attach: exit %d\n%s\n%s", code, stdout, stderr)
	if code != 0 {
		t.Fatalf("attach exit %d, want 0", code)
	}
	r := readRestoreReport(t, dir)
	for _, n := range labtest.Nodes {
		if got := r.status(n); got != "success" {
			t.Errorf("%s: %q, want success", n, got)
		}
		if gen, _ := lastRestore(t, lab, n); r.Generation == nil || gen != r.Generation.ID {
			t.Errorf("%s restored generation %d", n, gen)
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "mail.log"))
	if err != nil || bytes.Count(log, []byte("Choose backup generation to restore")) != 1 || !bytes.Contains(log, []byte("Starting BlueMind services OK")) {
		t.Errorf("mail.log is not the script's output once, whole (err %v):\n%s", err, log)
	}
}

func TestRestore_SecondConcurrentRestoreIsRefusedWithExitFive(t *testing.T) {
	lab := fastLab(t, "0.1")
	dir := filepath.Join(t.TempDir(), "report")
	first, out := startRestore(t, lab, dir, "restore", "--generation", "latest", "--yes")
	waitState(t, dir, "answered", "mail", "files")
	_, r, code, _ := restore(t, lab, "restore", "--generation", "latest", "--yes")
	if code != 5 {
		t.Errorf("second restore: exit %d, want 5", code)
	}
	for _, n := range r.Nodes {
		if n.Restore != nil {
			t.Errorf("second restore touched %s: %+v", n.Name, n.Restore)
		}
	}
	err := first.Wait()
	t.Logf("first restore:\n%s", out)
	if err != nil {
		t.Errorf("first restore: %v, want exit 0", err)
	}
}

func TestRestore_InterruptedOnceLeavesRestoresRunningThenAttachFinishes(t *testing.T) {
	lab := fastLab(t, "0.2")
	dir := filepath.Join(t.TempDir(), "report")
	cmd, out := startRestore(t, lab, dir, "restore", "--generation", "latest", "--yes")
	waitState(t, dir, "answered", "mail", "files")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	t.Logf("interrupted:\n%s", out)
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d (%v), want 130", code, err)
	}
	// The printed command names the inventory and the report dir given
	// here, so that it works when pasted as is.
	if !strings.Contains(out.String(), "prapush -i "+lab.InventoryPath()+" attach ") || !strings.Contains(out.String(), "--report-dir "+dir) {
		t.Errorf("the attach command is not printed whole")
	}
	r := readRestoreReport(t, dir)
	if r.ExitCode != 130 || r.status("mail") != "running" {
		t.Errorf("report after Ctrl-C: exit %d, mail %q; want 130, running", r.ExitCode, r.status("mail"))
	}
	attachToTheEnd(t, lab, lab.InventoryPath(), dir)
}

func TestRestore_DetachExitsSixAndStatusThenAttachFinish(t *testing.T) {
	lab := fastLab(t, "0.2")
	dir, r, code, _ := restore(t, lab, "restore", "--generation", "latest", "--yes", "--detach")
	if code != 6 {
		t.Fatalf("exit %d, want 6", code)
	}
	if r.status("mail") != "running" || r.status("core") != "not-started" {
		t.Errorf("after detach: mail %q core %q", r.status("mail"), r.status("core"))
	}
	stdout, _, code := lab.Prapush(t, "-i", lab.InventoryPath(), "--report-dir", dir, "status")
	t.Logf("status:\n%s", stdout)
	if code != 0 || !strings.Contains(stdout, "waiting to start") {
		t.Errorf("status exit %d; the core should be waiting to start:\n%s", code, stdout)
	}
	attachToTheEnd(t, lab, lab.InventoryPath(), dir)
}

// The node's network goes away while its script runs: the detached script
// goes on, prapush reports the node unreachable (exit 3) without starting
// the next stage, and attach finishes the run once the node is back.
func TestRestore_LostConnectionDuringAStageThenAttach(t *testing.T) {
	lab := fastLab(t, "0.3")
	inv := lab.EditInventory(t, "mail", "keepalive", `"1s"`)
	dir := filepath.Join(t.TempDir(), "report")
	cmd, out := startRestore(t, lab, dir, "-i", inv, "restore", "--generation", "latest", "--yes")
	waitState(t, dir, "answered", "mail")
	lab.Disconnect(t, "mail")
	err := cmd.Wait()
	t.Logf("lost mail:\n%s", out)
	lab.Connect(t, "mail")
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("exit %d (%v), want 3", code, err)
	}
	r := readRestoreReport(t, dir)
	if r.status("core") != "not-started" {
		t.Errorf("core %q: the next stage must wait for mail", r.status("core"))
	}
	attachToTheEnd(t, lab, inv, dir)
}

// The store changes between the plan and the core's stage (a generation
// file removed): the core's menu no longer shows the planned line at the
// planned index, so prapush must not answer, and stops its script.
func TestRestore_MenuChangedSinceThePlanIsNeverAnswered(t *testing.T) {
	lab := fastLab(t, "0.2")
	dir := filepath.Join(t.TempDir(), "report")
	cmd, out := startRestore(t, lab, dir, "restore", "--generation", "latest", "--yes")
	waitState(t, dir, "answered", "mail", "files")
	if err := os.Remove(filepath.Join(lab.StorePath(), "generation-310.json")); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	t.Logf("restore (%v):\n%s", err, out)
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	r := readRestoreReport(t, dir)
	if got := r.status("core"); got != "failed" {
		t.Errorf("core %q, want failed", got)
	}
	if !strings.Contains(out.String(), "not answered") {
		t.Errorf("the output does not say the menu was not answered")
	}
	if gen, _ := lastRestore(t, lab, "core"); gen != 0 {
		t.Errorf("the core restored generation %d from an unverified answer", gen)
	}
	if ps := restoreProcesses(t, lab, "core"); ps != "" {
		t.Errorf("the core's script still runs:\n%s", ps)
	}
}

// A legacy (<= 4.3) script on one node: its prompt ends without a newline,
// it prints "not tagget" lines and no headers; the run still succeeds.
func TestRestore_LegacyScriptOnOneNode(t *testing.T) {
	lab := fastLabWith(t, "0.05", "files", "VARIANT=legacy")
	dir, r, code, out := restore(t, lab, "restore", "--generation", "latest", "--yes")
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, out)
	}
	if got := r.status("files"); got != "success" {
		t.Errorf("files %q", got)
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "files.log"))
	if err != nil || !bytes.Contains(log, []byte("This server is not tagget as")) {
		t.Errorf("files.log is not a legacy script's output (%v)", err)
	}
}

// attachToTheEnd runs `prapush attach` on the run in dir and requires that
// it exits 0 with every node restored; it returns the report and output.
func attachToTheEnd(t *testing.T, lab *labtest.Lab, inv, dir string) (*restoreReport, string) {
	t.Helper()
	stdout, stderr, code := lab.Prapush(t, "-i", inv, "--report-dir", dir, "attach")
	if code != 0 {
		t.Fatalf("attach exit %d\n%s\n%s", code, stdout, stderr)
	}
	r := readRestoreReport(t, dir)
	for _, n := range labtest.Nodes {
		if got := r.status(n); got != "success" {
			t.Errorf("%s: %q after attach", n, got)
		}
	}
	return r, stdout + stderr
}
