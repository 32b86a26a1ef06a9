package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prapush/prapush/lab/labtest"
)

// inventoryWithKnownHosts writes a copy of the lab inventory whose
// known_hosts file is kh.
func inventoryWithKnownHosts(t *testing.T, lab *labtest.Lab, kh string) string {
	t.Helper()
	b, err := os.ReadFile(lab.InventoryPath())
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), lab.KnownHostsPath(), kh)
	if s == string(b) {
		t.Fatalf("the lab inventory does not name %s", lab.KnownHostsPath())
	}
	p := filepath.Join(t.TempDir(), "inventory.toml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The enrolment after a reinstall: an empty known_hosts, hostkeys --yes
// records every node's keys, strict verification then passes; a second
// run finds them known; a key changed afterwards is reported, never
// overwritten, and fails with exit 3.
func TestHostkeys_EnrolsEveryNodeThenRefusesAChangedKey(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	inv := inventoryWithKnownHosts(t, lab, kh)

	// Strict and unknown: refused, exit 3.
	if _, _, code := lab.Prapush(t, "-i", inv, "verify", "--report-dir", filepath.Join(t.TempDir(), "r0")); code != 3 {
		t.Fatalf("verify with an empty known_hosts: exit %d, want 3", code)
	}
	// Not a terminal and no --yes: nothing recorded, exit 2.
	if _, stderr, code := lab.Prapush(t, "-i", inv, "hostkeys"); code != 2 || !strings.Contains(stderr, "--yes") {
		t.Fatalf("hostkeys without --yes off a terminal: exit %d, stderr %q; want 2 naming --yes", code, stderr)
	}
	if _, err := os.Stat(kh); err == nil {
		t.Fatalf("known_hosts written without confirmation")
	}

	stdout, stderr, code := lab.Prapush(t, "-i", inv, "hostkeys", "--yes")
	if code != 0 {
		t.Fatalf("hostkeys --yes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, n := range labtest.Nodes {
		if !strings.Contains(stdout, n) || !strings.Contains(stdout, "SHA256:") {
			t.Errorf("hostkeys output lacks %s or a fingerprint:\n%s", n, stdout)
		}
	}
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatalf("known_hosts not written: %v", err)
	}
	for _, n := range labtest.Nodes {
		if !strings.Contains(string(b), lab.IP(t, n)+" ") {
			t.Errorf("known_hosts has no entry for %s (%s):\n%s", n, lab.IP(t, n), b)
		}
	}
	if st, err := os.Stat(kh); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode: %v %v, want 0600", st.Mode().Perm(), err)
	}
	r, code := verify(t, lab, inv)
	if code != 0 {
		t.Fatalf("strict verify after enrolment: exit %d", code)
	}
	for _, n := range labtest.Nodes {
		if got := r.status(n, "ssh.connect"); got != "pass" {
			t.Errorf("%s ssh.connect = %q after enrolment, want pass", n, got)
		}
	}
	if stdout, _, code := lab.Prapush(t, "-i", inv, "hostkeys", "--yes"); code != 0 || !strings.Contains(stdout, "already known") {
		t.Errorf("second hostkeys: exit %d, want 0 and 'already known':\n%s", code, stdout)
	}

	lab.ChangeHostKey(t, "mail")
	before, _ := os.ReadFile(kh)
	stdout, stderr, code = lab.Prapush(t, "-i", inv, "hostkeys", "--yes")
	if code != 3 || !strings.Contains(stdout, "CHANGED") || !strings.Contains(stderr, "ssh-keygen -R") {
		t.Errorf("changed key: exit %d, want 3 with CHANGED and the ssh-keygen -R hint\n%s\n%s", code, stdout, stderr)
	}
	after, _ := os.ReadFile(kh)
	if string(before) != string(after) {
		t.Errorf("a changed key was written to known_hosts")
	}
}

// exec runs a command on the selected nodes: every line prefixed with its
// node, each node's output in its log, exit 1 when a command fails, exit 3
// when a node is down.
func TestExec_PrefixesOutputPerNodeAndLogsIt(t *testing.T) {
	lab := labtest.Require(t)
	lab.PrapushPath(t)
	lab.Reset(t, "ok")
	dir := filepath.Join(t.TempDir(), "report")
	// Three lines everywhere, then exit 7 on the mail node only.
	stdout, stderr, code := lab.Prapush(t, "-i", lab.InventoryPath(), "exec", "--report-dir", dir, "--",
		"sh", "-c", `for i in 1 2 3; do echo "line $i of $(cat /etc/bm/server.uid)"; done; ip -4 -o addr | grep -q " `+lab.IP(t, "mail")+`/" && exit 7; exit 0`)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if code != 1 || !strings.Contains(stderr, "exit status 7") {
		t.Errorf("exec failing on one node: exit %d, want 1 with its status 7 reported", code)
	}
	for _, n := range labtest.Nodes {
		for _, want := range []string{"line 1 of", "line 3 of"} {
			found := false
			for _, l := range strings.Split(stdout, "\n") {
				if strings.HasPrefix(l, n+" ") && strings.Contains(l, want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no %q line prefixed with %s", want, n)
			}
		}
		log, err := os.ReadFile(filepath.Join(dir, "logs", n+".log"))
		if err != nil || !strings.Contains(string(log), "line 2 of") {
			t.Errorf("logs/%s.log: %v %q", n, err, log)
		}
	}
	// The limit selects nodes; a stopped node is exit 3.
	lab.Stop(t, "files")
	stdout, _, code = lab.Prapush(t, "-i", lab.InventoryPath(), "-l", "core,files", "exec", "--report-dir", filepath.Join(t.TempDir(), "r2"), "--", "true")
	if code != 3 {
		t.Errorf("exec with a stopped node: exit %d, want 3\n%s", code, stdout)
	}
	if strings.Contains(stdout, "mail") {
		t.Errorf("--limit core,files ran on mail:\n%s", stdout)
	}
	_, _, code = lab.Prapush(t, "-i", lab.InventoryPath(), "-l", "core", "exec", "--report-dir", filepath.Join(t.TempDir(), "r3"), "--", "sh", "-c", "exit 4")
	if code != 1 {
		t.Errorf("exec of a failing command: exit %d, want 1", code)
	}
}

// Only one prapush follows a run: an attach while the restore that started
// it still follows is refused with exit 5 and changes nothing; once the
// follower is gone (even killed: the kernel drops its lock), attach takes
// over and completes the run.
func TestAttach_RefusedWhileAnotherPrapushFollowsTheRun(t *testing.T) {
	lab := fastLab(t, "0.3")
	dir := filepath.Join(t.TempDir(), "report")
	cmd, _ := startRestore(t, lab, dir, "restore", "--generation", "latest", "--yes")
	waitState(t, dir, "answered", "mail", "files")
	_, stderr, code := lab.Prapush(t, "-i", lab.InventoryPath(), "--report-dir", dir, "attach")
	if code != 5 || !strings.Contains(stderr, "already followed") {
		t.Errorf("attach during a followed run: exit %d, stderr %q; want 5 'already followed'", code, stderr)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	attachToTheEnd(t, lab, lab.InventoryPath(), dir)
}
