package node_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// api calls the core's local API from inside the node with the node's own token.
func (n labNode) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	cmd := `curl -s -o /tmp/api.out -w '%{http_code}' -X ` + method +
		` -H "X-BM-ApiKey: $(cat /etc/bm/bm-core.tok)" -H 'Content-Type: application/json'`
	if body != "" {
		cmd += ` --data-binary @/tmp/api.in`
		n.mustSh(t, "cat >/tmp/api.in <<'EOF'\n"+body+"\nEOF")
	}
	code := n.mustSh(t, cmd+" http://127.0.0.1:8090"+path+"; echo; cat /tmp/api.out")
	first, rest, _ := strings.Cut(code, "\n")
	var c int
	if err := json.Unmarshal([]byte(first), &c); err != nil {
		t.Fatalf("%s %s: status %q", method, path, first)
	}
	return c, rest
}

// waitTask polls a TaskRef until its final state (bounded by the number of polls).
func (n labNode) waitTask(t *testing.T, ref string) string {
	t.Helper()
	var tr struct{ ID string }
	if err := json.Unmarshal([]byte(ref), &tr); err != nil || tr.ID == "" {
		t.Fatalf("task ref %q: %v", ref, err)
	}
	for i := 0; i < 50; i++ {
		code, body := n.api(t, "GET", "/api/tasks/"+tr.ID, "")
		var st struct{ State string }
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("task status %d %q", code, body)
		}
		if st.State != "InProgress" && st.State != "NotStarted" {
			return st.State
		}
	}
	t.Fatalf("task %s never ended", tr.ID)
	return ""
}

func startCore(t *testing.T, store, apiConf string) labNode {
	t.Helper()
	env := map[string]string{"LAB_NODE": "core", "LAB_CORE": "1", "LAB_BM_VERSION": "4.8.2",
		"LAB_EXTERNAL_URL": "mail.lab.invalid", "LAB_CORE_IP": coreIP}
	n := startNodeWith(t, env, "", apiConf, store)
	// The API starts in the background of the entrypoint: wait until it listens.
	for i := 0; ; i++ {
		if _, rc := n.sh(t, "curl -s -o /dev/null http://127.0.0.1:8090/"); rc == 0 {
			break
		}
		if i == 1000 {
			t.Fatalf("API never listened: %s", n.mustSh(t, "cat /var/log/fake-bm/bmapi.log"))
		}
		_, _ = n.sh(t, "sleep 0.05")
	}
	return n
}

func TestCoreAPI_TokenStateAndVersion(t *testing.T) {
	t.Parallel()
	n := startCore(t, tree{gens: standardGens()}.write(t), "")
	if out := n.mustSh(t, "curl -s -o /dev/null -w '%{http_code}' -H 'X-BM-ApiKey: wrong' http://127.0.0.1:8090/api/system/installation/state"); out != "401" {
		t.Errorf("wrong token: %s", out)
	}
	if code, body := n.api(t, "GET", "/api/system/installation/state", ""); code != 200 || body != `"CORE_STATE_RUNNING"` {
		t.Errorf("state: %d %q", code, body)
	}
	code, body := n.api(t, "GET", "/api/system/installation/version", "")
	var v struct {
		DatabaseVersion, SoftwareVersion, VersionName string
		NeedsUpgrade                                  bool
	}
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil ||
		v != (struct {
			DatabaseVersion, SoftwareVersion, VersionName string
			NeedsUpgrade                                  bool
		}{"4.8.2", "4.1.1234", "4.8.2", false}) {
		t.Errorf("version: %d %q", code, body)
	}
	n.mustSh(t, "bmctl stop")
	if code, _ := n.api(t, "GET", "/api/system/installation/state", ""); code != 503 {
		t.Errorf("state with core stopped: %d", code)
	}
}

func TestCoreAPI_PostOperationsHaveTheirEffects(t *testing.T) {
	t.Parallel()
	n := startCore(t, tree{gens: standardGens()}.write(t), "")
	code, ref := n.api(t, "POST", "/api/system/security/_updatefirewallrules", "")
	if code != 200 || n.waitTask(t, ref) != "Success" {
		t.Fatalf("firewall: %d %q", code, ref)
	}
	if got := n.mustSh(t, "grep bmHosts= /etc/init.d/bm-iptables"); got != `bmHosts="`+coreIP+" "+dataIP+`"`+"\n" {
		t.Errorf("bm-iptables: %q", got)
	}
	code, ref = n.api(t, "POST", "/api/system/maildelivery/mgmt/_repair", "")
	if code != 200 || n.waitTask(t, ref) != "Success" {
		t.Fatalf("repair: %d %q", code, ref)
	}
	if got := n.mustSh(t, "ls /etc/postfix | grep -c '\\.db$'"); got != "5\n" {
		t.Errorf("postfix maps: %q", got)
	}
	cert := `{"certificateAuthority":"CA\n","certificate":"-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n","privateKey":"-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n"}`
	if code, body := n.api(t, "POST", "/api/system/security", cert); code != 200 {
		t.Fatalf("certificate: %d %q", code, body)
	}
	if got := n.mustSh(t, "grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/bm_cert.pem; grep -c 'PRIVATE KEY' /etc/ssl/certs/bm_cert.pem"); got != "1\n2\n" {
		t.Errorf("bm_cert.pem: %q", got)
	}
	// DataProtect: a fresh install knows no generation; after _syncfs it knows the files.
	if code, body := n.api(t, "GET", "/api/dataprotect/generations", ""); code != 200 || body != "[]" {
		t.Errorf("generations before sync: %d %q", code, body)
	}
	code, ref = n.api(t, "POST", "/api/dataprotect/_syncfs", "")
	if code != 200 || n.waitTask(t, ref) != "Success" {
		t.Fatalf("syncfs: %d %q", code, ref)
	}
	_, body := n.api(t, "GET", "/api/dataprotect/generations", "")
	var gens []struct {
		ID             int   `json:"id"`
		ProtectionTime int64 `json:"protectionTime"`
	}
	if err := json.Unmarshal([]byte(body), &gens); err != nil || len(gens) != 2 ||
		gens[0].ID != 310 || gens[1].ID != 312 || gens[1].ProtectionTime != pt312 {
		t.Errorf("generations after sync: %v %+v", err, gens)
	}
}

func TestCoreAPI_FailKnobMakesOneOperationFail(t *testing.T) {
	t.Parallel()
	n := startCore(t, tree{gens: standardGens()}.write(t), "FAIL_OP=firewall\n")
	_, ref := n.api(t, "POST", "/api/system/security/_updatefirewallrules", "")
	if st := n.waitTask(t, ref); st != "InError" {
		t.Errorf("firewall with FAIL_OP: %s", st)
	}
	if _, rc := n.sh(t, "test -e /etc/init.d/bm-iptables"); rc == 0 {
		t.Errorf("a failed firewall task must not write bm-iptables")
	}
	_, ref = n.api(t, "POST", "/api/system/maildelivery/mgmt/_repair", "")
	if st := n.waitTask(t, ref); st != "Success" {
		t.Errorf("other operations still succeed: %s", st)
	}
	n.mustSh(t, "echo FAIL_OP=syncfs >/etc/fake-bm-api.conf; echo FAIL_MODE=http >>/etc/fake-bm-api.conf")
	if code, _ := n.api(t, "POST", "/api/dataprotect/_syncfs", ""); code != 500 {
		t.Errorf("FAIL_MODE=http: %d", code)
	}
}

func TestCoreAPI_FollowsTheRestore(t *testing.T) {
	t.Parallel()
	n := startCore(t, tree{gens: standardGens()}.write(t), "")
	n.mustSh(t, "bmctl stop")
	if code, _ := n.api(t, "GET", "/api/system/installation/state", ""); code != 503 {
		t.Errorf("state while stopped: %d", code)
	}
	// Restore the older generation (menu 1 = 310): the database then knows only it.
	out := n.mustSh(t, "cd /usr/share/bm-node && echo 1 | FAKE_PRA_STEP_SECONDS=0 FAKE_PRA_IPS="+coreIP+
		" FAKE_PRA_APPLY=1 python -u bm-pra-restore.py")
	if !strings.HasSuffix(out, "\rStarting BlueMind services OK\n") {
		t.Fatalf("restore output %q", out)
	}
	// The restore replaced the token with the backup's: the API follows the file.
	if got := n.mustSh(t, "cat /etc/bm/bm-core.tok"); got != "restored-token-2001" {
		t.Errorf("token after restore: %q", got)
	}
	if code, body := n.api(t, "GET", "/api/system/installation/state", ""); code != 200 || body != `"CORE_STATE_RUNNING"` {
		t.Errorf("state after restore: %d %q", code, body)
	}
	ids := func() []int {
		_, body := n.api(t, "GET", "/api/dataprotect/generations", "")
		var gens []struct{ ID int }
		if err := json.Unmarshal([]byte(body), &gens); err != nil {
			t.Fatalf("generations %q: %v", body, err)
		}
		var r []int
		for _, g := range gens {
			r = append(r, g.ID)
		}
		return r
	}
	if got := ids(); len(got) != 1 || got[0] != 310 {
		t.Errorf("generations known after restoring 310: %v", got)
	}
	_, ref := n.api(t, "POST", "/api/dataprotect/_syncfs", "")
	if st := n.waitTask(t, ref); st != "Success" {
		t.Fatalf("syncfs: %s", st)
	}
	if got := ids(); len(got) != 2 || got[0] != 310 || got[1] != 312 {
		t.Errorf("generations after syncfs: %v", got)
	}
}
