package node_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prapush/prapush/internal/testenv"
)

// labNode is a container started with the real entrypoint and the container contract.
type labNode struct {
	name string
	keys string // host dir mounted read-only at /etc/prapush-lab
}

func startNode(t *testing.T, env map[string]string, conf string) labNode {
	t.Helper()
	return startNodeWith(t, env, conf, "", "")
}

// startNodeWith starts a node with optional knobs of the fake script (conf) and of the
// API (apiConf), and an optional backup store mounted at /var/backups/bluemind.
func startNodeWith(t *testing.T, env map[string]string, conf, apiConf, store string) labNode {
	t.Helper()
	img := labImage(t, "bullseye")
	keys := t.TempDir()
	for _, k := range []string{"ssh_host_ed25519_key", "client"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-test",
			"-f", filepath.Join(keys, k)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(keys, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(keys, "authorized_keys"), string(pub))
	if conf != "" {
		writeFile(t, filepath.Join(keys, "fake-bm-pra.conf"), conf)
	}
	if apiConf != "" {
		writeFile(t, filepath.Join(keys, "fake-bm-api.conf"), apiConf)
	}
	n := labNode{name: containerName(), keys: keys}
	args := []string{"run", "-d", "--name", n.name, "-v", keys + ":/etc/prapush-lab:ro"}
	if store != "" {
		args = append(args, "-v", store+":/var/backups/bluemind")
	}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", n.name).Run() })
	if out, err := exec.Command("docker", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	// The entrypoint ends by exec'ing sshd: wait for its listener line (bounded by the
	// number of attempts, not by a clock).
	for i := 0; ; i++ {
		out, _ := exec.Command("docker", "logs", n.name).CombinedOutput()
		if strings.Contains(string(out), "Server listening on") {
			break
		}
		if i == 1000 {
			t.Fatalf("sshd never started; logs:\n%s", out)
		}
		_ = exec.Command("sleep", "0.05").Run()
	}
	return n
}

// sh runs a shell command in the node and returns its combined output and exit status.
func (n labNode) sh(t *testing.T, cmd string) (string, int) {
	t.Helper()
	out, err := exec.Command("docker", "exec", n.name, "sh", "-c", cmd).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker exec: %v", err)
	}
	return string(out), 0
}

func (n labNode) mustSh(t *testing.T, cmd string) string {
	t.Helper()
	out, rc := n.sh(t, cmd)
	if rc != 0 {
		t.Fatalf("%s: rc %d\n%s", cmd, rc, out)
	}
	return out
}

func TestEntrypoint_CoreNodeLooksLikeAFreshBlueMindAfterTheSetupWizard(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{
		"LAB_NODE": "core", "LAB_CORE": "1", "LAB_BM_VERSION": "4.8.2",
		"LAB_EXTERNAL_URL": "mail.lab.invalid", "LAB_CORE_IP": "10.77.0.11",
		"LAB_VARIANT": "bm4es", "TZ": "Asia/Tokyo",
	}, "STEP_SECONDS=0.1\n")
	if got := n.mustSh(t, `dpkg-query -W -f='${Package} ${Version}\n' 'bm-*'`); got !=
		"bm-conf 4.8.2.1234\nbm-core 4.8.2.1234\nbm-full 4.8.2.1234\nbm-node 4.8.2.1234\n" {
		t.Errorf("packages: %q", got)
	}
	if got := n.mustSh(t, "cat /etc/bm/bm.ini"); got != "[global]\nexternal-url = mail.lab.invalid\n"+
		"external-protocol = https\ndbtype = PGSQL\nhost = 10.77.0.11\ndb = bj\nuser = bj\npassword = bj\n"+
		"port = 5432\nhz-member-address = 10.77.0.11\n" {
		t.Errorf("bm.ini: %q", got)
	}
	if got := n.mustSh(t, "stat -c '%a %U:%G' /etc/bm/bm-core.tok; cat /etc/bm/bm-core.tok; echo; cat /etc/bm/server.uid"); !regexp.MustCompile(`^440 root:bluemind\n[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\nbm-master$`).MatchString(got) {
		t.Errorf("token/server.uid: %q", got)
	}
	if got := n.mustSh(t, "ls /etc/postgresql; cat /etc/timezone; date +%Z; cat /etc/fake-bm-pra.conf; grep -c 'Waiting for ES cluster is up' /usr/share/bm-node/bm-pra-restore.py"); got != "14\nAsia/Tokyo\nJST\nSTEP_SECONDS=0.1\n1\n" {
		t.Errorf("pg/tz/knobs/family: %q", got)
	}
	// The setup wizard's self-signed certificate: what check.certificate and
	// certificate.reinstall read, and openssl x509 must understand.
	const pem = "/etc/ssl/certs/bm_cert.pem"
	if got := n.mustSh(t, "stat -c '%a %U' "+pem+"; grep -c -e '-----BEGIN CERTIFICATE-----' "+pem+"; grep -c -e '-----BEGIN PRIVATE KEY-----' "+pem); got != "600 root\n2\n1\n" {
		t.Errorf("bm_cert.pem mode and blocks (want certificate, key, CA): %q", got)
	}
	if got := n.mustSh(t, "openssl x509 -in "+pem+" -noout -checkend 86400 && openssl x509 -in "+pem+" -noout -text | grep -o -e 'CN *= *mail.lab.invalid' -e 'DNS:mail.lab.invalid'"); !strings.Contains(got, "mail.lab.invalid\nDNS:mail.lab.invalid\n") {
		t.Errorf("bm_cert.pem is not a valid certificate naming the external url: %q", got)
	}
	if got := n.mustSh(t, "[ \"$(openssl x509 -in "+pem+" -noout -pubkey)\" = \"$(openssl pkey -in "+pem+" -pubout)\" ] && echo same"); got != "same\n" {
		t.Errorf("the private key of bm_cert.pem is not its certificate's: %q", got)
	}
	if got := n.mustSh(t, "stat -c '%a' /root/.ssh/authorized_keys /etc/ssh/ssh_host_ed25519_key"); got != "600\n600\n" {
		t.Errorf("key modes: %q", got)
	}
	// bmctl: running after the wizard, status 1 once stopped, every call logged.
	if _, rc := n.sh(t, "bmctl status"); rc != 0 {
		t.Errorf("bmctl status rc %d after setup", rc)
	}
	n.mustSh(t, "bmctl stop")
	if out, rc := n.sh(t, "bmctl status"); rc != 1 || !strings.Contains(out, "bm-core: inactive") {
		t.Errorf("bmctl status when stopped: rc %d %q", rc, out)
	}
	if got := n.mustSh(t, "bmctl start && bmctl status >/dev/null && cut -d' ' -f2- /var/log/fake-bm/bmctl.log"); got != "bmctl status\nbmctl stop\nbmctl status\nbmctl start\nbmctl status\n" {
		t.Errorf("bmctl log: %q", got)
	}
	// service shim: BlueMind units are emulated, systemctl answers from their state.
	n.mustSh(t, "service bm-node stop")
	if out, rc := n.sh(t, "systemctl is-active bm-node"); rc != 3 || out != "inactive\n" {
		t.Errorf("is-active after stop: rc %d %q", rc, out)
	}
	if out := n.mustSh(t, "service bm-node start && systemctl is-active bm-node"); out != "active\n" {
		t.Errorf("is-active after start: %q", out)
	}
	if out, rc := n.sh(t, "systemctl is-system-running"); rc == 0 || out != "offline\n" {
		t.Errorf("is-system-running: rc %d %q", rc, out)
	}
	// Switching the family later.
	if got := n.mustSh(t, "lab-set-variant legacy && grep -c tagget /usr/share/bm-node/bm-pra-restore.py && cat /var/lib/prapush-lab/variant && ls /etc/postgresql"); got != "2\nlegacy 11\n11\n14\n" {
		t.Errorf("lab-set-variant: %q", got)
	}
}

func TestEntrypoint_DataNodeRegistersMailboxRoleAndItsUID(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{
		"LAB_NODE": "data", "LAB_CORE": "0", "LAB_BM_VERSION": "4.3.1", "LAB_BM_BUILD": "77",
		"LAB_EXTERNAL_URL": "mail.lab.invalid", "LAB_CORE_IP": "10.77.0.11",
		"LAB_SERVER_UID": "8d3c0a52-6c1e-4f4e-9b2a-5d2f3e7c1a90", "LAB_VARIANT": "legacy",
		"LAB_PG_INSTALLED": "12 14", // not the script's 11: the restore.postgresql fault
	}, "")
	if got := n.mustSh(t, `dpkg-query -W -f='${Package} ${Version}\n' 'bm-*'; cat /etc/bm/server.uid; echo; ls /etc/postgresql; test -e /etc/fake-bm-pra.conf || echo noconf; grep -c tagget /usr/share/bm-node/bm-pra-restore.py; grep -o 'postgresql/[0-9]*/' /usr/share/bm-node/bm-pra-restore.py`); got !=
		"bm-conf 4.3.1.77\nbm-mailbox-role 4.3.1.77\nbm-node 4.3.1.77\n8d3c0a52-6c1e-4f4e-9b2a-5d2f3e7c1a90\n12\n14\nnoconf\n2\npostgresql/11/\n" {
		t.Errorf("data node: %q", got)
	}
	// A restart keeps what a restore wrote (the certificate too) and does not
	// duplicate the dpkg entries.
	cert := n.mustSh(t, "cat /etc/ssl/certs/bm_cert.pem")
	n.mustSh(t, "echo restored >/etc/bm/bm.ini")
	if out, err := exec.Command("docker", "restart", n.name).CombinedOutput(); err != nil {
		t.Fatalf("docker restart: %v\n%s", err, out)
	}
	if got := n.mustSh(t, `cat /etc/bm/bm.ini; dpkg-query -W -f='${Package}\n' 'bm-*' | wc -l`); got != "restored\n3\n" {
		t.Errorf("after restart: %q", got)
	}
	if got := n.mustSh(t, "cat /etc/ssl/certs/bm_cert.pem"); got != cert {
		t.Error("a restart replaced bm_cert.pem: a restored certificate must survive it")
	}
}

func TestEntrypoint_RootLogsInOverSSHWithThePinnedHostKey(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh"); err != nil {
		testenv.SkipOrFail(t, "ssh client not installed")
	}
	n := startNode(t, map[string]string{"LAB_NODE": "n1", "LAB_CORE": "0", "LAB_CORE_IP": "10.77.0.11"}, "")
	ip, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", n.name).Output()
	if err != nil || strings.TrimSpace(string(ip)) == "" {
		t.Fatalf("container ip: %v %q", err, ip)
	}
	hostPub, err := os.ReadFile(filepath.Join(n.keys, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, strings.TrimSpace(string(ip))+" "+string(hostPub))
	cmd := exec.Command("ssh", "-F", "/dev/null", "-i", filepath.Join(n.keys, "client"),
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+kh,
		"root@"+strings.TrimSpace(string(ip)),
		"id -u; cd /usr/share/bm-node && python -c 'import sys; print(sys.version_info[0])'")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "0\n2\n" {
		t.Fatalf("ssh: %v %q", err, out)
	}
}
