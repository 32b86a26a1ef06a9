package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/lab/labgen"
	"github.com/prapush/prapush/lab/labtest"
)

// postReport is the part of report.json the post tests read.
type postReport struct {
	RunID          string `json:"run_id"`
	Command        string `json:"command"`
	Verdict        string `json:"verdict"`
	ExitCode       int    `json:"exit_code"`
	PostOperations []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"post_operations"`
	Nodes []struct {
		Name    string `json:"name"`
		Restore *struct {
			Status string `json:"status"`
		} `json:"restore"`
	} `json:"nodes"`
	Notes []string `json:"notes"`
}

// postOps are the results prapush post reports, in order.
var postOps = []string{"core.state", "dataprotect.resync", "firewall.update", "mail.repair", "certificate.reinstall",
	"check.services", "check.config", "check.certificate", "check.firewall", "check.postfix", "check.dataprotect"}

func (r *postReport) op(t *testing.T, id string) (status, message string) {
	t.Helper()
	for _, o := range r.PostOperations {
		if o.ID == id {
			return o.Status, o.Message
		}
	}
	t.Fatalf("no post-operation %s in the report:\n%s", id, r.dump())
	return "", ""
}

func (r *postReport) dump() string {
	var b strings.Builder
	for _, o := range r.PostOperations {
		fmt.Fprintf(&b, "  %-22s %-4s %s\n", o.ID, o.Status, o.Message)
	}
	return b.String()
}

// runPost runs prapush post with args, its report in dir ("" = a new
// directory), and returns the report, the output and the exit code.
func runPost(t *testing.T, lab *labtest.Lab, dir string, args ...string) (rep *postReport, output string, code int) {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "report")
	}
	args = append([]string{"-i", lab.InventoryPath(), "post", "--report-dir", dir}, args...)
	stdout, stderr, code := lab.Prapush(t, args...)
	output = stdout + stderr
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("post wrote no report.json (exit %d): %v\n%s", code, err, output)
	}
	rep = &postReport{}
	if err := json.Unmarshal(b, rep); err != nil {
		t.Fatalf("report.json: %v\n%s", err, b)
	}
	if rep.ExitCode != code {
		t.Errorf("report exit_code %d, process exit code %d", rep.ExitCode, code)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prapush %s (exit %d):\n%s", strings.Join(args, " "), code, output)
		}
	})
	return rep, output, code
}

// alterCore records that the test changes the core beyond what Reset
// regenerates (the post-operations rewrite its files and the fake API's
// state), so that the next Reset recreates it. SetKnob is labtest's way to
// mark a node altered; STEP_SECONDS only paces the fake restore script.
func alterCore(t *testing.T, lab *labtest.Lab) {
	t.Helper()
	lab.SetKnob(t, "core", "STEP_SECONDS", "0.05")
}

func coreExec(t *testing.T, lab *labtest.Lab, args ...string) string {
	t.Helper()
	out, err := lab.Exec("core", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setAPIKnobs writes the fake API's knobs file on the core ("" removes it).
func setAPIKnobs(t *testing.T, lab *labtest.Lab, knobs string) {
	t.Helper()
	if knobs == "" {
		coreExec(t, lab, "rm", "-f", "/etc/fake-bm-api.conf")
		return
	}
	coreExec(t, lab, "sh", "-c", `printf '%s\n' "$1" >/etc/fake-bm-api.conf`, "sh", knobs)
}

// installCertificate puts a certificate for the lab's external URL, its key
// and its CA (labgen makes them now: no key material is committed) where BlueMind
// keeps them, as after a restore, and returns the file's content.
func installCertificate(t *testing.T, lab *labtest.Lab) string {
	t.Helper()
	b, err := os.ReadFile(lab.InventoryPath())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^external_url = "([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no external_url in the lab inventory")
	}
	content, err := labgen.SelfSignedPEM(string(m[1]), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	coreExec(t, lab, "sh", "-c", `mkdir -p /etc/ssl/certs && printf '%s' "$1" >/etc/ssl/certs/bm_cert.pem`, "sh", content)
	return content
}

func coreEpoch(t *testing.T, lab *labtest.Lab) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(coreExec(t, lab, "date", "+%s")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// noTokenIn fails the test when the core's API token appears in the
// output or in any file of the report directory.
func noTokenIn(t *testing.T, lab *labtest.Lab, output, dir string) {
	t.Helper()
	tok := strings.TrimSpace(coreExec(t, lab, "cat", "/etc/bm/bm-core.tok"))
	if len(tok) < 8 {
		t.Fatalf("implausible token %q", tok)
	}
	if strings.Contains(output, tok) {
		t.Error("the API token appears in prapush's output")
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		if strings.Contains(string(b), tok) {
			t.Errorf("the API token appears in %s", p)
		}
		return nil
	})
}

func TestPost_OnTheHealthyLabEveryOperationTakesEffectOnTheCore(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	alterCore(t, lab)
	cert := installCertificate(t, lab)
	before := coreEpoch(t, lab)

	dir := filepath.Join(t.TempDir(), "report")
	rep, output, code := runPost(t, lab, dir)
	if code != 0 || rep.Verdict != "pass" || rep.Command != "post" {
		t.Fatalf("post: exit %d verdict %q command %q, want 0 pass post:\n%s", code, rep.Verdict, rep.Command, rep.dump())
	}
	var got []string
	for _, o := range rep.PostOperations {
		got = append(got, o.ID)
		if o.Status != "pass" {
			t.Errorf("%s: %s %q, want pass", o.ID, o.Status, o.Message)
		}
	}
	if strings.Join(got, " ") != strings.Join(postOps, " ") {
		t.Errorf("post-operations %v, want %v", got, postOps)
	}

	// What the core's API did, seen on the core's files.
	fw := coreExec(t, lab, "cat", "/etc/init.d/bm-iptables")
	for _, node := range labtest.Nodes {
		if ip := lab.IP(t, node); !regexp.MustCompile(`bmHosts="[^"]*\b` + regexp.QuoteMeta(ip) + `\b`).MatchString(fw) {
			t.Errorf("bm-iptables does not allow %s (%s):\n%s", node, ip, fw)
		}
	}
	for _, m := range []string{"transport", "virtual_alias", "virtual_domains", "virtual_mailbox", "master_relay_transport"} {
		for _, suffix := range []string{"", "-flat", ".db"} {
			p := "/etc/postfix/" + m + suffix
			mtime, err := strconv.ParseInt(strings.TrimSpace(coreExec(t, lab, "stat", "-c", "%Y", p)), 10, 64)
			if err != nil || mtime < before {
				t.Errorf("%s: mtime %d (%v), want rewritten at or after %d", p, mtime, err, before)
			}
		}
	}
	if now := coreExec(t, lab, "cat", "/etc/ssl/certs/bm_cert.pem"); now != cert {
		t.Errorf("bm_cert.pem after the reinstall differs from the certificate, key and CA it was made from:\n%s", now)
	}
	ops := coreExec(t, lab, "cat", "/var/log/fake-bm/bmapi-ops.log")
	for _, want := range []string{"dataprotect syncfs", "firewall bmHosts=", "maildelivery repair", "certificate updated"} {
		if !strings.Contains(ops, want) {
			t.Errorf("the core API never did %q:\n%s", want, ops)
		}
	}
	noTokenIn(t, lab, output, dir)
}

func TestPost_AFailingOperationIsReportedAndTheNextPostSucceeds(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	alterCore(t, lab)
	installCertificate(t, lab)

	// The firewall task ends InError.
	setAPIKnobs(t, lab, "FAIL_OP=firewall")
	rep, _, code := runPost(t, lab, "")
	if code != 1 || rep.Verdict != "fail" {
		t.Fatalf("post with a failing firewall task: exit %d verdict %q, want 1 fail:\n%s", code, rep.Verdict, rep.dump())
	}
	if st, msg := rep.op(t, "firewall.update"); st != "fail" || !strings.Contains(msg, "ended InError: firewall failed (lab knob") {
		t.Errorf("firewall.update %s %q, want fail with the task's message", st, msg)
	}
	for _, id := range []string{"dataprotect.resync", "mail.repair", "certificate.reinstall"} {
		if st, msg := rep.op(t, id); st != "pass" {
			t.Errorf("%s %s %q: the other operations must still run", id, st, msg)
		}
	}
	if st, msg := rep.op(t, "check.firewall"); st != "fail" {
		t.Errorf("check.firewall %s %q after a failed firewall update, want fail", st, msg)
	}

	// The re-sync request itself is refused (HTTP 500).
	setAPIKnobs(t, lab, "FAIL_OP=syncfs\nFAIL_MODE=http")
	rep, _, code = runPost(t, lab, "")
	if code != 1 {
		t.Fatalf("post with a failing re-sync: exit %d, want 1:\n%s", code, rep.dump())
	}
	if st, msg := rep.op(t, "dataprotect.resync"); st != "fail" || !strings.Contains(msg, "HTTP 500: UNKNOWN: syncfs failed (lab knob)") {
		t.Errorf("dataprotect.resync %s %q, want fail with the API's message", st, msg)
	}
	if st, msg := rep.op(t, "firewall.update"); st != "pass" {
		t.Errorf("firewall.update %s %q once its knob is gone, want pass", st, msg)
	}

	// Knob cleared: a second post completes what the first ones missed.
	setAPIKnobs(t, lab, "")
	rep, _, code = runPost(t, lab, "")
	if code != 0 || rep.Verdict != "pass" {
		t.Fatalf("post after clearing the knob: exit %d verdict %q, want 0 pass:\n%s", code, rep.Verdict, rep.dump())
	}
}

func TestPost_NoResyncIsAWarningAndLeavesDataProtectAlone(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	alterCore(t, lab)
	installCertificate(t, lab)

	rep, _, code := runPost(t, lab, "", "--no-resync")
	if code != 0 {
		t.Fatalf("post --no-resync: exit %d, want 0 (warnings allowed):\n%s", code, rep.dump())
	}
	if st, msg := rep.op(t, "dataprotect.resync"); st != "warn" || !strings.Contains(msg, "next DataProtect backup") {
		t.Errorf("dataprotect.resync %s %q, want a warning saying what the next backup does", st, msg)
	}
	// A freshly installed core knows no generation: the check says so.
	if st, msg := rep.op(t, "check.dataprotect"); st != "warn" {
		t.Errorf("check.dataprotect %s %q, want warn", st, msg)
	}
	if ops, _ := lab.Exec("core", "cat", "/var/log/fake-bm/bmapi-ops.log"); strings.Contains(ops, "syncfs") {
		t.Errorf("--no-resync re-synchronised DataProtect:\n%s", ops)
	}

	rep, _, code = runPost(t, lab, "", "--no-resync", "--strict")
	if code != 1 {
		t.Errorf("post --no-resync --strict: exit %d, want 1", code)
	}
	if st, msg := rep.op(t, "dataprotect.resync"); st != "fail" || !strings.HasPrefix(msg, "(strict)") {
		t.Errorf("dataprotect.resync under --strict: %s %q", st, msg)
	}
}

func TestPost_RunIDCompletesTheRestoresReport(t *testing.T) {
	lab := fastLab(t, "0.05") // the fake's steps, not the test, set the pace
	installCertificate(t, lab)
	dir := filepath.Join(t.TempDir(), "run")
	stdout, stderr, code := lab.Prapush(t, "-i", lab.InventoryPath(), "restore", "--generation", "latest", "--yes", "-o", "json", "--report-dir", dir)
	if code != 0 {
		t.Fatalf("the restore before post failed (exit %d): nothing to complete\n%s\n%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var restored postReport
	if err := json.Unmarshal(b, &restored); err != nil {
		t.Fatal(err)
	}

	rep, output, code := runPost(t, lab, dir, restored.RunID)
	if code != 0 || rep.Command != "restore" || rep.RunID != restored.RunID {
		t.Fatalf("post %s: exit %d, report of %q run %s, want 0 and the restore's own report:\n%s", restored.RunID, code, rep.Command, rep.RunID, rep.dump())
	}
	for _, o := range rep.PostOperations {
		if o.Status != "pass" {
			t.Errorf("%s: %s %q, want pass", o.ID, o.Status, o.Message)
		}
	}
	// The run says which generation was restored: bm.ini is compared with
	// that generation's copy in the backup.
	if _, msg := rep.op(t, "check.config"); !strings.Contains(msg, "bm.ini equals generation 312's copy") {
		t.Errorf("check.config %q, want bm.ini compared with generation 312's copy", msg)
	}
	for _, n := range rep.Nodes {
		if n.Restore == nil || n.Restore.Status != "success" {
			t.Errorf("%s: the restore's result was lost: %+v", n.Name, n.Restore)
		}
	}
	noTokenIn(t, lab, output, dir)
}
