package tasks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prapush/prapush/internal/testenv"
)

// localCore is a core node on this machine: a tree under root, fake bmctl
// and systemctl, a curl wrapper that logs its arguments, and a fake API on
// 127.0.0.1:0. The real apiScript and postCheckScript run against it.
type localCore struct {
	t        *testing.T
	dir      string
	root     string
	token    string
	argvLog  string // one line per curl call: its arguments
	conn     *localConn
	commands []string
	srv      *httptest.Server

	mu        sync.Mutex
	requests  int
	badTokens int
	certData  map[string]string
	certType  string
	tasks     map[string]func() // effect applied when the task ends
	polls     map[string]int
	pem       postPEMSet
}

type postPEMSet struct{ cert, key, ca string }

// newPEMSet generates, at test time, a CA and a server certificate for
// host: certificate, private key and CA blocks as BlueMind concatenates them.
func newPostPEMSet(t *testing.T, host string) postPEMSet {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "prapush test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	return postPEMSet{cert: enc("CERTIFICATE", der), key: enc("PRIVATE KEY", keyDER), ca: enc("CERTIFICATE", caDER)}
}

func newLocalCore(t *testing.T) *localCore {
	t.Helper()
	for _, tool := range []string{"curl", "awk", "sha256sum", "stat"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, tool+" not installed: the post-operation scripts need it")
		}
	}
	realCurl, _ := exec.LookPath("curl")
	dir := t.TempDir()
	var tb [16]byte
	_, _ = rand.Read(tb[:])
	lc := &localCore{t: t, dir: dir, root: filepath.Join(dir, "root"), token: hex.EncodeToString(tb[:]),
		argvLog: filepath.Join(dir, "curl-argv.log"), tasks: map[string]func(){}, polls: map[string]int{}}
	lc.pem = newPostPEMSet(t, "mail.acme.example")
	bin := filepath.Join(dir, "bin")
	writeFile(t, filepath.Join(bin, "curl"), "#!/bin/sh\nprintf '%s\\n' \"$*\" >>"+postShellQuote(lc.argvLog)+"\nexec "+postShellQuote(realCurl)+" \"$@\"\n", 0o755)
	writeFile(t, filepath.Join(bin, "bmctl"), "#!/bin/sh\necho 'bm-core: active (running)'\n", 0o755)
	writeFile(t, filepath.Join(bin, "systemctl"), "#!/bin/sh\necho active\n", 0o755)
	ini := "[global]\nexternal-url = mail.acme.example\nhost = 10.0.0.1\n"
	writeFile(t, filepath.Join(lc.root, "etc/bm/bm.ini"), ini, 0o644)
	writeFile(t, filepath.Join(lc.root, "etc/bm/bm-core.tok"), lc.token, 0o440)
	writeFile(t, filepath.Join(lc.root, "etc/ssl/certs/bm_cert.pem"), lc.pem.cert+lc.pem.key+lc.pem.ca, 0o644)
	store := filepath.Join(lc.root, StoreDir)
	writeFile(t, filepath.Join(store, "dp_spool/rsync/10.0.0.1/bm/conf/2041/var/backups/bluemind/work/conf/etc/bm/bm.ini"), ini, 0o644)
	writeFile(t, filepath.Join(store, "generation-312.json"), `{"id":312,"protectionTime":1742000000000,"withErrors":false,"withWarnings":false,
		"blueMind":{"displayName":"4.8.2"},"parts":[{"id":2041,"generation":312,"tag":"bm/conf","server":"bm-master","valid":"VALID","begin":1,"end":2}]}`, 0o644)
	if err := os.MkdirAll(filepath.Join(lc.root, "etc/init.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(lc.root, "etc/postfix"), 0o755); err != nil {
		t.Fatal(err)
	}
	lc.conn = &localConn{commands: &lc.commands, env: []string{"PATH=" + bin + ":" + os.Getenv("PATH")}}
	lc.srv = httptest.NewServer(http.HandlerFunc(lc.serve))
	t.Cleanup(lc.srv.Close)
	return lc
}

func postShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (lc *localCore) opts() PostOptions {
	o := testPostOptions()
	o.API, o.root, o.Generation = lc.srv.URL, lc.root, 312
	o.PollInterval = time.Millisecond
	return o
}

func (lc *localCore) respond(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

func (lc *localCore) serve(w http.ResponseWriter, r *http.Request) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.requests++
	if r.Header.Get("X-BM-ApiKey") != lc.token {
		lc.badTokens++
		lc.respond(w, 401, map[string]string{"errorCode": "PERMISSION_DENIED", "message": "invalid or missing X-BM-ApiKey"})
		return
	}
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(lc.root, rel), []byte(content), 0o644); err != nil {
			lc.t.Errorf("effect: %v", err)
		}
	}
	task := func(effect func()) {
		id := fmt.Sprintf("t%d", len(lc.tasks)+1)
		lc.tasks[id] = effect
		lc.respond(w, 200, map[string]string{"id": id})
	}
	switch p := r.URL.Path; {
	case r.Method == "GET" && p == "/api/system/installation/state":
		lc.respond(w, 200, "CORE_STATE_RUNNING")
	case r.Method == "GET" && p == "/api/dataprotect/generations":
		lc.respond(w, 200, []map[string]int{{"id": 312}})
	case r.Method == "POST" && p == "/api/dataprotect/_syncfs":
		task(func() {})
	case r.Method == "POST" && p == "/api/system/security/_updatefirewallrules":
		task(func() { write("etc/init.d/bm-iptables", "#!/bin/sh\nbmHosts=\"10.0.0.1 10.0.0.2\"\n") })
	case r.Method == "POST" && p == "/api/system/maildelivery/mgmt/_repair":
		task(func() {
			for _, m := range []string{"transport", "virtual_alias", "virtual_domains", "virtual_mailbox", "master_relay_transport"} {
				write("etc/postfix/"+m+".db", "map\n")
			}
		})
	case r.Method == "POST" && p == "/api/system/security":
		lc.certType = r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &lc.certData); err != nil {
			lc.respond(w, 400, map[string]string{"errorCode": "INVALID_PARAMETER", "message": err.Error()})
			return
		}
		w.WriteHeader(200)
	case r.Method == "GET" && strings.HasPrefix(p, "/api/tasks/"):
		id := strings.TrimPrefix(p, "/api/tasks/")
		effect, ok := lc.tasks[id]
		if !ok {
			lc.respond(w, 404, map[string]string{"errorCode": "NOT_FOUND", "message": id})
			return
		}
		lc.polls[id]++
		if lc.polls[id] == 1 {
			lc.respond(w, 200, map[string]any{"state": "InProgress", "progress": 0.5, "lastLogEntry": "running"})
			return
		}
		if lc.polls[id] == 2 {
			effect()
		}
		lc.respond(w, 200, map[string]any{"state": "Success", "progress": 1, "lastLogEntry": "done"})
	default:
		lc.respond(w, 404, map[string]string{"errorCode": "NOT_FOUND", "message": p})
	}
}

func (lc *localCore) curlArgv() string {
	b, err := os.ReadFile(lc.argvLog)
	if err != nil && !os.IsNotExist(err) {
		lc.t.Fatal(err)
	}
	return string(b)
}

// The real scripts, with the real curl, against a fake API: every
// operation succeeds, the API gets the token in its header, and neither the
// token nor the private key is on any command line (the node's, or curl's).
func TestPostOperations_RealScriptsPassTheTokenOnlyThroughCurlsStdin(t *testing.T) {
	lc := newLocalCore(t)
	rs := PostOperations(t.Context(), lc.conn, lc.opts(), nil)
	for _, r := range rs {
		want := Pass
		if r.ID == PostCheckConfig {
			continue // bm-core.tok's owner depends on who runs the test; see below
		}
		if r.Status != want {
			t.Errorf("%s: %s %q, want %s", r.ID, r.Status, r.Message, want)
		}
	}
	if r := postByID(t, rs, PostCheckConfig); !strings.Contains(r.Message, "bm.ini equals generation 312's copy") {
		t.Errorf("check.config %q: the restored bm.ini was not found equal to the backup's", r.Message)
	}
	if lc.requests == 0 || lc.badTokens != 0 {
		t.Errorf("%d requests, %d without the right X-BM-ApiKey", lc.requests, lc.badTokens)
	}
	argv := lc.curlArgv()
	if strings.Count(argv, "\n") != lc.requests {
		t.Errorf("curl ran %d times for %d requests", strings.Count(argv, "\n"), lc.requests)
	}
	keyBody := strings.Split(lc.pem.key, "\n")[1]
	for _, secret := range []string{lc.token, keyBody} {
		if strings.Contains(argv, secret) {
			t.Errorf("a curl command line holds a secret:\n%s", argv)
		}
		for _, c := range lc.commands {
			if strings.Contains(c, secret) {
				t.Errorf("a node command line holds a secret: %q", c)
			}
		}
		for _, r := range rs {
			if strings.Contains(r.Message, secret) {
				t.Errorf("result %s holds a secret: %q", r.ID, r.Message)
			}
		}
	}
	if lc.certType != "application/json" {
		t.Errorf("certificate posted as %q", lc.certType)
	}
	if lc.certData["certificate"] != lc.pem.cert || lc.certData["privateKey"] != lc.pem.key || lc.certData["certificateAuthority"] != lc.pem.ca {
		t.Errorf("CertData %q, want the file's certificate, key and CA blocks", lc.certData)
	}
	if r := postByID(t, rs, PostCheckCert); !strings.Contains(r.Message, "valid until") && !strings.Contains(r.Message, "no openssl") {
		t.Errorf("check.certificate %q", r.Message)
	}
}

func TestPostOperations_RealScriptRefusesAnOddTokenBeforeRunningCurl(t *testing.T) {
	lc := newLocalCore(t)
	writeFile(t, filepath.Join(lc.root, "etc/bm/bm-core.tok"), "abc\"\nheader = \"X-Other: 1", 0o440)
	rs := PostOperations(t.Context(), lc.conn, lc.opts(), nil)
	r := postByID(t, rs, PostCoreState)
	if r.Status != Fail || !strings.Contains(r.Message, "unexpected characters") {
		t.Errorf("core.state %+v", r)
	}
	if argv := lc.curlArgv(); argv != "" {
		t.Errorf("curl ran with an unusable token:\n%s", argv)
	}
}

func TestPostOperations_RealScriptReportsARefusedToken(t *testing.T) {
	lc := newLocalCore(t)
	writeFile(t, filepath.Join(lc.root, "etc/bm/bm-core.tok"), "0000-not-the-token", 0o440)
	rs := PostOperations(t.Context(), lc.conn, lc.opts(), nil)
	if r := postByID(t, rs, PostCoreState); r.Status != Fail || !strings.Contains(r.Message, "PERMISSION_DENIED") {
		t.Errorf("core.state %+v, want the API's refusal", r)
	}
	if lc.requests != 1 {
		t.Errorf("%d requests after a refusal, want 1", lc.requests)
	}
}

func TestPostOperations_RealScriptSendsNoCertificateWithoutItsKey(t *testing.T) {
	lc := newLocalCore(t)
	writeFile(t, filepath.Join(lc.root, "etc/ssl/certs/bm_cert.pem"), lc.pem.cert+lc.pem.ca, 0o644)
	rs := PostOperations(t.Context(), lc.conn, lc.opts(), nil)
	if r := postByID(t, rs, PostCertificate); r.Status != Fail || !strings.Contains(r.Message, "does not hold both a certificate and a private key") {
		t.Errorf("certificate.reinstall %+v", r)
	}
	if lc.certData != nil {
		t.Errorf("a certificate was posted: %v", lc.certData)
	}
	if r := postByID(t, rs, PostCheckCert); r.Status != Fail {
		t.Errorf("check.certificate %+v, want fail", r)
	}
}
