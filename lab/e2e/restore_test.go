package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
		} `json:"restore"`
	} `json:"nodes"`
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
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	for _, node := range labtest.Nodes {
		lab.SetKnob(t, node, "STEP_SECONDS", "0.05") // the fake's steps, not the test, set the pace
	}
	r, code := runRestore(t, lab)
	if code != 0 || r.Verdict != "pass" {
		t.Fatalf("restore exit %d verdict %q, want 0 pass", code, r.Verdict)
	}
	for _, n := range r.Nodes {
		if n.Restore == nil || n.Restore.Status != "success" {
			t.Errorf("%s: restore %+v, want success", n.Name, n.Restore)
			continue
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
