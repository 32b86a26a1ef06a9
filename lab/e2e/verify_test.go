package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
func (r *report) status(node, id string) string { return r.check(node, id).Status }

// check returns the result of check id on node ("" = architecture checks),
// or a zero check when the report has no such result.
func (r *report) check(node, id string) check {
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
			return c
		}
	}
	return check{}
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

// verify runs `prapush -i inv verify -o json --report-dir DIR [args]` and
// returns the report it wrote and its exit code.
func verify(t *testing.T, lab *labtest.Lab, inv string, args ...string) (*report, int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "report")
	stdout, stderr, code := lab.Prapush(t, append([]string{"-i", inv, "verify", "-o", "json", "--report-dir", dir}, args...)...)
	if _, err := os.Stat(filepath.Join(dir, "report.json")); err != nil {
		t.Fatalf("verify wrote no report.json (exit %d): %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	r := readChecks(t, dir)
	if r.ExitCode != code {
		t.Errorf("report exit_code %d, process exit code %d", r.ExitCode, code)
	}
	t.Logf("verify exit %d, results:\n%s", code, r.dump())
	return r, code
}

// readChecks reads the checks of the report.json in dir.
func readChecks(t *testing.T, dir string) *report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report.json: %v\n%s", err, b)
	}
	return &r
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

// nodeCheckIDs and architectureCheckIDs are every check id of the spec
// (§ Checks), where each is reported.
var (
	nodeCheckIDs = []string{
		"ssh.connect", "ssh.privilege", "backup.present", "backup.mounted", "backup.writable",
		"backup.shared", "backup.generations", "backup.idle", "host.ip", "host.backup_data",
		"bluemind.installed", "bluemind.version", "bluemind.external_url", "os.release",
		"os.python", "restore.script", "restore.postgresql", "restore.idle", "disk.space",
		"generation.parts",
	}
	architectureCheckIDs = []string{"generation.common", "generation.coverage"}
)

// TestVerify_HealthyLabPassesEveryCheckForTheLatestGeneration is the
// passing half of every check id on the lab: with a generation chosen, no
// check may warn or skip, so each one was really evaluated.
func TestVerify_HealthyLabPassesEveryCheckForTheLatestGeneration(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	r, code := verify(t, lab, lab.InventoryPath(), "--generation", "latest")
	if code != 0 || r.Verdict != "pass" {
		t.Errorf("healthy lab, latest generation: exit %d verdict %q, want 0 pass", code, r.Verdict)
	}
	for _, n := range labtest.Nodes {
		for _, id := range nodeCheckIDs {
			if got := r.status(n, id); got != "pass" {
				t.Errorf("%s: %s = %q, want pass", n, id, got)
			}
		}
		// Each node looked for the probes of the two others and saw them.
		if got, want := r.check(n, "backup.shared").Message, "sees the probes of the other 2 node(s)"; got != want {
			t.Errorf("%s: backup.shared says %q, want %q", n, got, want)
		}
	}
	for _, id := range architectureCheckIDs {
		if got := r.status("", id); got != "pass" {
			t.Errorf("architecture: %s = %q, want pass", id, got)
		}
	}
}

// TestVerify_Faults injects one real fault per case into the lab and asserts
// that verify fails the check that guards against it, with the spec's exit
// code.
func TestVerify_Faults(t *testing.T) {
	cases := []struct {
		name    string
		preset  string
		inject  func(t *testing.T, lab *labtest.Lab) (inventory string)
		args    []string // more verify flags
		want    []want
		exit    int
		verdict string // default fail
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
			// Debian 12: Python 3 as /usr/bin/python, and not the inventory's os.
			name:   "BookwormNodeFailsOSPythonAndOSRelease",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.Recreate(t, "mail", "SUITE=bookworm"); return "" },
			want: []want{{"mail", "os.python", "fail"}, {"core", "os.python", "pass"},
				{"mail", "os.release", "fail"}, {"core", "os.release", "warn"}},
			exit: 1,
		},
		{
			name:   "MissingHostDirFailsHostBackupDataAndGenerationCoverage",
			preset: "no-host-dir",
			args:   []string{"--generation", "312"},
			want: []want{{"mail", "host.backup_data", "fail"}, {"core", "host.backup_data", "pass"},
				{"", "generation.coverage", "fail"}},
			exit: 1,
		},
		{
			// The backup knows a server the inventory forgot.
			name:   "NodeMissingFromInventoryFailsGenerationCoverage",
			inject: func(t *testing.T, lab *labtest.Lab) string { return lab.InventoryWithout(t, "files") },
			args:   []string{"--generation", "312"},
			want:   []want{{"", "generation.coverage", "fail"}, {"mail", "generation.parts", "pass"}},
			exit:   1,
		},
		{
			name: "UsersWithAndWithoutSudoPassAndFailSSHPrivilege",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				inv := lab.EditInventory(t, "core", "user", `"lab-sudo"`)
				inv = lab.EditInventoryFrom(t, inv, "core", "become", `"sudo"`)
				inv = lab.EditInventoryFrom(t, inv, "mail", "user", `"lab-user"`)
				return lab.EditInventoryFrom(t, inv, "mail", "become", `"sudo"`)
			},
			want: []want{{"core", "ssh.privilege", "pass"}, {"core", "backup.writable", "pass"},
				{"mail", "ssh.privilege", "fail"}, {"files", "ssh.privilege", "pass"}},
			exit: 1,
		},
		{
			name:   "StoreThatIsAFileFailsBackupPresent",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.StoreNotADirectory(t, "files"); return "" },
			want:   []want{{"files", "backup.present", "fail"}, {"core", "backup.present", "pass"}},
			exit:   1,
		},
		{
			name:   "NodeOnItsOwnStoreFailsBackupShared",
			inject: func(t *testing.T, lab *labtest.Lab) string { lab.OwnView(t, "mail"); return "" },
			want:   []want{{"mail", "backup.shared", "fail"}, {"core", "backup.shared", "fail"}},
			exit:   1,
		},
		{
			name: "SetupWizardNotRunFailsBluemindInstalled",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				lab.Change(t, "mail", "rm /etc/bm/bm.ini")
				return ""
			},
			want: []want{{"mail", "bluemind.installed", "fail"}, {"core", "bluemind.installed", "pass"}},
			exit: 1,
		},
		{
			name: "MissingPostgreSQLClusterFailsRestorePostgreSQL",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				lab.Change(t, "mail", "rm -r /etc/postgresql/14")
				return ""
			},
			args: []string{"--generation", "latest"},
			want: []want{{"mail", "restore.postgresql", "fail"}, {"core", "restore.postgresql", "pass"}},
			exit: 1,
		},
		{
			// The real fake script, waiting at its menu for an answer that
			// never comes: a restore someone already started by hand.
			name: "RunningRestoreScriptFailsRestoreIdleWithExit5",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				lab.Change(t, "files", `cd /usr/share/bm-node && { sleep 600 | python bm-pra-restore.py >/dev/null 2>&1 & }
					for i in $(seq 100); do pgrep -f bm-pra-restore.py >/dev/null && exit 0; sleep 0.1; done; exit 1`)
				return ""
			},
			want: []want{{"files", "restore.idle", "fail"}, {"core", "restore.idle", "pass"}},
			exit: 5,
		},
		{
			// Warnings pass (spec § Exit codes)...
			name:    "PartsLargerThanTheDiskWarnDiskSpace",
			preset:  "huge-parts",
			args:    []string{"--generation", "latest"},
			want:    []want{{"mail", "disk.space", "warn"}, {"core", "disk.space", "pass"}},
			exit:    0,
			verdict: "pass",
		},
		{
			// ... unless --strict, which reports them as failures.
			name:   "PartsLargerThanTheDiskFailDiskSpaceWithStrict",
			preset: "huge-parts",
			args:   []string{"--generation", "latest", "--strict"},
			want:   []want{{"mail", "disk.space", "fail"}, {"core", "disk.space", "pass"}},
			exit:   1,
		},
		{
			name:   "GenerationWithoutESPartFailsGenerationParts",
			preset: "missing-es-part",
			args:   []string{"--generation", "312"},
			want:   []want{{"core", "generation.parts", "fail"}},
			exit:   1,
		},
		{
			name:   "GenerationWithoutAConfPartFailsGenerationParts",
			preset: "missing-conf-part",
			args:   []string{"--generation", "312"},
			want:   []want{{"mail", "generation.parts", "fail"}, {"files", "generation.parts", "pass"}},
			exit:   1,
		},
		{
			name:   "InterruptedGenerationFailsGenerationParts",
			preset: "incomplete-generation",
			args:   []string{"--generation", "312"},
			want:   []want{{"files", "generation.parts", "fail"}},
			exit:   1,
		},
		{
			name:   "TwoGenerationsOnOneMenuLineFailGenerationParts",
			preset: "dup-protectionTime",
			args:   []string{"--generation", "312"},
			want:   []want{{"core", "generation.parts", "fail"}},
			exit:   1,
		},
		{
			name:    "InvalidJSONGenerationFileWarnsBackupGenerations",
			preset:  "bad-json",
			want:    []want{{"core", "backup.generations", "warn"}},
			exit:    0,
			verdict: "pass",
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
			name: "KeyTheNodeDoesNotAuthorizeFailsSSHConnectWithExit3",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				key := filepath.Join(t.TempDir(), "id_ed25519")
				if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen: %v\n%s", err, out)
				}
				return lab.EditInventory(t, "files", "identity_files", `["`+key+`"]`)
			},
			want: []want{{"files", "ssh.connect", "fail"}, {"core", "ssh.connect", "pass"}},
			exit: 3,
		},
		{
			name: "HostKeyNotInKnownHostsFailsSSHConnectWithExit3",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				empty := filepath.Join(t.TempDir(), "known_hosts")
				if err := os.WriteFile(empty, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return lab.EditInventory(t, "mail", "known_hosts", `["`+empty+`"]`)
			},
			want: []want{{"mail", "ssh.connect", "fail"}, {"core", "ssh.connect", "pass"}},
			exit: 3,
		},
		{
			name: "MissingInterpreterAndScriptFailOSPythonAndRestoreScript",
			inject: func(t *testing.T, lab *labtest.Lab) string {
				inv := lab.EditInventory(t, "mail", "python", `"/usr/bin/python2.9"`)
				return lab.EditInventoryFrom(t, inv, "files", "restore_script", `"/usr/share/bm-node/no-such-script.py"`)
			},
			want: []want{{"mail", "os.python", "fail"}, {"files", "restore.script", "fail"},
				{"files", "os.python", "pass"}, {"mail", "restore.script", "pass"}},
			exit: 1,
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
			r, code := verify(t, lab, inv, c.args...)
			if code != c.exit {
				t.Errorf("exit code %d, want %d", code, c.exit)
			}
			verdict := c.verdict
			if verdict == "" {
				verdict = "fail"
			}
			if r.Verdict != verdict {
				t.Errorf("verdict %q, want %s", r.Verdict, verdict)
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
