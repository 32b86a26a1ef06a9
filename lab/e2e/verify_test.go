package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prapush/prapush/lab/labtest"
)

// report is the part of prapush's report.json (spec §Report) these tests read.
type report struct {
	Schema   string `json:"schema"`
	Command  string `json:"command"`
	Verdict  string `json:"verdict"`
	ExitCode int    `json:"exit_code"`
	Nodes    []struct {
		Name      string  `json:"name"`
		IP        string  `json:"ip"`
		Reachable bool    `json:"reachable"`
		Checks    []check `json:"checks"`
	} `json:"nodes"`
	ArchitectureChecks []check `json:"architecture_checks"`
}

type check struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// status returns the status of check id on node ("" = architecture checks),
// or "" when the report has no such result.
func (r *report) status(node, id string) string {
	checks := r.ArchitectureChecks
	if node != "" {
		checks = nil
		for _, n := range r.Nodes {
			if n.Name == node {
				checks = n.Checks
			}
		}
	}
	for _, c := range checks {
		if c.ID == id {
			return c.Status
		}
	}
	return ""
}

// dump renders every result, for failure messages.
func (r *report) dump() string {
	var b strings.Builder
	for _, c := range r.ArchitectureChecks {
		fmt.Fprintf(&b, "  architecture %-22s %-4s %s\n", c.ID, c.Status, c.Message)
	}
	for _, n := range r.Nodes {
		for _, c := range n.Checks {
			fmt.Fprintf(&b, "  %-12s %-22s %-4s %s\n", n.Name, c.ID, c.Status, c.Message)
		}
	}
	return b.String()
}

// verify runs `prapush -i inv verify -o json --report-dir DIR` and returns
// the report it wrote and its exit code.
func verify(t *testing.T, lab *labtest.Lab, inv string) (*report, int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "report")
	stdout, stderr, code := lab.Prapush(t, "-i", inv, "verify", "-o", "json", "--report-dir", dir)
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("verify wrote no report.json (exit %d): %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report.json: %v\n%s", err, b)
	}
	if r.ExitCode != code {
		t.Errorf("report exit_code %d, process exit code %d", r.ExitCode, code)
	}
	t.Logf("verify exit %d, results:\n%s", code, r.dump())
	return &r, code
}

// want is one expected result: node "" means an architecture check.
type want struct{ node, id, status string }

func TestVerify_HealthyLabPassesWithExitZero(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t) // skip before touching the lab while prapush does not build
	lab.Reset(t, "ok")
	r, code := verify(t, lab, lab.InventoryPath())
	if code != 0 || r.Verdict != "pass" {
		t.Errorf("healthy lab: exit %d verdict %q, want 0 pass", code, r.Verdict)
	}
	if len(r.Nodes) != len(labtest.Nodes) {
		t.Fatalf("report has %d nodes, want %d", len(r.Nodes), len(labtest.Nodes))
	}
	for _, n := range r.Nodes {
		if !n.Reachable {
			t.Errorf("%s not reachable", n.Name)
		}
		for _, c := range n.Checks {
			if c.Status == "fail" {
				t.Errorf("%s: %s failed: %s", n.Name, c.ID, c.Message)
			}
		}
		for _, id := range []string{"ssh.connect", "backup.writable", "host.ip", "host.backup_data", "os.python", "restore.script"} {
			if got := r.status(n.Name, id); got != "pass" {
				t.Errorf("%s: %s = %q, want pass", n.Name, id, got)
			}
		}
	}
	for _, c := range r.ArchitectureChecks {
		if c.Status == "fail" {
			t.Errorf("architecture: %s failed: %s", c.ID, c.Message)
		}
	}
}

// TestVerify_Faults injects one real fault per case into the lab and asserts
// that verify fails the check that guards against it, with the spec's exit
// code.
func TestVerify_Faults(t *testing.T) {
	cases := []struct {
		name   string
		preset string
		inject func(t *testing.T, lab *labtest.Lab) (inventory string)
		want   []want
		exit   int
	}{
		{
			name:   "ReadOnlyStoreFailsBackupWritable",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.StoreReadOnly(t, "mail"); return "" },
			want:   []want{{"mail", "backup.writable", "fail"}, {"core", "backup.writable", "pass"}},
			exit:   1,
		},
		{
			name: "InventoryIPAbsentFromNodeFailsHostIP",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				// mail is still reached at its address, but the inventory
				// claims the backup knows it as another IP.
				ip := lab.IP(t, "mail")
				other := ip[:strings.LastIndex(ip, ".")] + ".22"
				return lab.EditInventory(t, "mail", "ip", `"`+other+`"`)
			},
			want: []want{{"mail", "host.ip", "fail"}, {"files", "host.ip", "pass"}},
			exit: 1,
		},
		{
			name:   "BlueMindVersionMismatchFailsBluemindVersion",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.Recreate(t, "files", "BM_VERSION=4.8.1"); return "" },
			want:   []want{{"files", "bluemind.version", "fail"}, {"core", "bluemind.version", "pass"}},
			exit:   1,
		},
		{
			name:   "Python3NodeFailsOSPython",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.Recreate(t, "mail", "SUITE=bookworm"); return "" },
			want:   []want{{"mail", "os.python", "fail"}, {"core", "os.python", "pass"}},
			exit:   1,
		},
		{
			name:   "MissingHostDirFailsHostBackupData",
			preset: "no-host-dir",
			want:   []want{{"mail", "host.backup_data", "fail"}, {"core", "host.backup_data", "pass"}},
			exit:   1,
		},
		{
			name:   "LoopbackDirFailsHostBackupData",
			preset: "loopback-dir",
			want:   []want{{"core", "host.backup_data", "fail"}, {"mail", "host.backup_data", "fail"}, {"files", "host.backup_data", "fail"}},
			exit:   1,
		},
		{
			name:   "GenerationFileTheScriptCrashesOnFailsBackupGenerations",
			preset: "crash-json",
			want:   []want{{"core", "backup.generations", "fail"}},
			exit:   1,
		},
		{
			name:   "GenerationMissingFromOneViewFailsGenerationCommon",
			preset: "stale-view",
			want:   []want{{"", "generation.common", "fail"}},
			exit:   1,
		},
		{
			name: "ExternalURLDifferenceFailsBluemindExternalURL",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				lab.Recreate(t, "core", "EXTERNAL_URL=webmail.other.example")
				return ""
			},
			want: []want{{"core", "bluemind.external_url", "fail"}, {"mail", "bluemind.external_url", "pass"}},
			exit: 1,
		},
		{
			name:   "BM5ScriptOnMailNodeFailsRestoreScript",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.Recreate(t, "mail", "VARIANT=bm5"); return "" },
			want:   []want{{"mail", "restore.script", "fail"}, {"core", "restore.script", "pass"}},
			exit:   1,
		},
		{
			name:   "DataProtectBackupInProgressFailsBackupIdleWithExit5",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.StartBackup(t, "files"); return "" },
			want:   []want{{"files", "backup.idle", "fail"}},
			exit:   5,
		},
		{
			name:   "ChangedHostKeyFailsSSHConnectWithExit3",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.ChangeHostKey(t, "core"); return "" },
			want:   []want{{"core", "ssh.connect", "fail"}, {"mail", "ssh.connect", "pass"}},
			exit:   3,
		},
		{
			name:   "StoppedNodeFailsSSHConnectWithExit3",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.Stop(t, "files"); return "" },
			want:   []want{{"files", "ssh.connect", "fail"}, {"core", "ssh.connect", "pass"}},
			exit:   3,
		},
		{
			name:   "DisconnectedNodeFailsSSHConnectWithExit3",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.Disconnect(t, "mail"); return "" },
			want:   []want{{"mail", "ssh.connect", "fail"}},
			exit:   3,
		},
	}
	lab := labtest.Require(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lab.PrapushPath(t) // skip before touching the lab while prapush does not build
			preset := c.preset
			if preset == "" {
				preset = "ok"
			}
			lab.Reset(t, preset)
			inv := ""
			if c.inject != nil {
				inv = c.inject(t, lab)
			}
			if inv == "" {
				inv = lab.InventoryPath()
			}
			r, code := verify(t, lab, inv)
			if code != c.exit {
				t.Errorf("exit code %d, want %d", code, c.exit)
			}
			if r.Verdict != "fail" {
				t.Errorf("verdict %q, want fail", r.Verdict)
			}
			for _, w := range c.want {
				if got := r.status(w.node, w.id); got != w.status {
					where := w.node
					if where == "" {
						where = "architecture"
					}
					t.Errorf("%s: %s = %q, want %q", where, w.id, got, w.status)
				}
			}
		})
	}
}
