package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/prapush/prapush/lab/labtest"
)

// ssh runs cmd on node with the system's OpenSSH client, the lab key and
// strict checking against the lab's pinned known_hosts only.
func ssh(t *testing.T, lab *labtest.Lab, node, cmd string) (string, error) {
	t.Helper()
	c := exec.Command("ssh", "-F", "/dev/null",
		"-i", lab.IdentityPath(), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+lab.KnownHostsPath(), "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5", "root@"+lab.IP(t, node), cmd)
	c.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	out, err := c.CombinedOutput()
	return string(out), err
}

func TestLab_NodesAnswerOpenSSHWithPinnedKeysAndShareTheStore(t *testing.T) {
	lab := labtest.Require(t)
	lab.Reset(t, "ok")
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatalf("OpenSSH client missing: %v", err)
	}
	tzs := map[string]bool{}
	for _, node := range labtest.Nodes {
		out, err := ssh(t, lab, node, "id -u; ip -4 -o addr show | awk '{print $4}'; python -c 'import sys; print(sys.version_info[0])'; date +%Z")
		if err != nil {
			t.Fatalf("%s: ssh with the pinned host key: %v\n%s", node, err, out)
		}
		lines := strings.Fields(out)
		if len(lines) < 4 || lines[0] != "0" {
			t.Fatalf("%s: want root, addresses, python major, tz; got %q", node, out)
		}
		if !strings.Contains(out, lab.IP(t, node)+"/") {
			t.Errorf("%s: ip addr does not show the inventory IP %s:\n%s", node, lab.IP(t, node), out)
		}
		if lines[len(lines)-2] != "2" {
			t.Errorf("%s: /usr/bin/python is not Python 2: %q", node, out)
		}
		tzs[lines[len(lines)-1]] = true
	}
	if len(tzs) != len(labtest.Nodes) {
		t.Errorf("nodes must run in different time zones, got %v", tzs)
	}

	// One node writes into the store, every node sees it: it is one store.
	probe := "/var/backups/bluemind/temp/smoke-" + strings.ReplaceAll(t.Name(), "/", "_")
	if out, err := ssh(t, lab, "core", "echo shared >"+probe); err != nil {
		t.Fatalf("write probe: %v\n%s", err, out)
	}
	for _, node := range labtest.Nodes {
		out, err := ssh(t, lab, node, "cat "+probe)
		if err != nil || strings.TrimSpace(out) != "shared" {
			t.Errorf("%s does not see the probe written by core: %v %q", node, err, out)
		}
	}
	if out, err := ssh(t, lab, "files", "rm "+probe); err != nil {
		t.Errorf("remove probe: %v\n%s", err, out)
	}
	out, err := lab.Exec("mail", "sh", "-c", "ls /var/backups/bluemind/generation-*.json | wc -l")
	if err != nil || strings.TrimSpace(out) != "3" {
		t.Errorf("ok preset: want 3 generation files on mail, got %q (%v)", out, err)
	}
}

func TestLab_ChangedHostKeyIsRefusedByStrictOpenSSH(t *testing.T) {
	lab := labtest.Require(t)
	lab.Reset(t, "ok")
	lab.ChangeHostKey(t, "files")
	out, err := ssh(t, lab, "files", "true")
	if err == nil || !strings.Contains(out, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("ssh to a node with a changed host key must fail on the key: %v\n%s", err, out)
	}
}
