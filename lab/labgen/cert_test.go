package labgen

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pemBlocks splits a bm_cert.pem into its blocks, failing on trailing junk.
func pemBlocks(t *testing.T, b []byte) []*pem.Block {
	t.Helper()
	var blocks []*pem.Block
	for {
		var p *pem.Block
		p, b = pem.Decode(b)
		if p == nil {
			break
		}
		blocks = append(blocks, p)
	}
	if len(strings.TrimSpace(string(b))) != 0 {
		t.Fatalf("bm_cert.pem has non-PEM data after its blocks: %q", b)
	}
	return blocks
}

func TestGenerate_ConfPartsCarryOneRealCertificateForTheExternalURL(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(dir, "stale-view", Options{ExternalURL: "webmail.example.org", ViewOut: dir + "-view"}); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "dp_spool/rsync/*/bm/conf/*/var/backups/bluemind/work/conf/etc/bm/certs/bm_cert.pem"))
	view, _ := filepath.Glob(filepath.Join(dir+"-view", "dp_spool/rsync/*/bm/conf/*/var/backups/bluemind/work/conf/etc/bm/certs/bm_cert.pem"))
	// 3 generations x 3 nodes, in the store and in the view (whose part
	// trees are the store's; only its generation files differ).
	if len(paths) != 9 || len(view) != 9 {
		t.Fatalf("want 9 bm_cert.pem in the store and in the view, got %d and %d", len(paths), len(view))
	}
	first, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(paths[1:], view...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(first) {
			t.Errorf("%s differs from %s: one architecture has one certificate", p, paths[0])
		}
	}
	if fi, err := os.Stat(paths[0]); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("bm_cert.pem holds a private key, it must not be world-readable: %v %v", fi.Mode(), err)
	}

	blocks := pemBlocks(t, first)
	if len(blocks) != 3 || blocks[0].Type != "CERTIFICATE" || blocks[1].Type != "PRIVATE KEY" || blocks[2].Type != "CERTIFICATE" {
		t.Fatalf("want CERTIFICATE, PRIVATE KEY, CERTIFICATE blocks, got %d blocks", len(blocks))
	}
	cert, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	if cert.Subject.CommonName != "webmail.example.org" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "webmail.example.org" {
		t.Errorf("certificate names CN=%q SAN=%v, want the external url", cert.Subject.CommonName, cert.DNSNames)
	}
	if err := cert.VerifyHostname("webmail.example.org"); err != nil {
		t.Errorf("certificate does not verify for the external url: %v", err)
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) || cert.NotAfter.Before(now.AddDate(1, 0, 0)) {
		t.Errorf("certificate valid %v..%v, want valid now and for years", cert.NotBefore, cert.NotAfter)
	}
	key, err := x509.ParsePKCS8PrivateKey(blocks[1].Bytes)
	if err != nil {
		t.Fatalf("parse private key: %v", err)
	}
	if ek, ok := key.(*ecdsa.PrivateKey); !ok || !ek.PublicKey.Equal(cert.PublicKey) {
		t.Error("the private key is not the certificate's")
	}
	pool := x509.NewCertPool()
	ca, err := x509.ParseCertificate(blocks[2].Bytes)
	if err != nil {
		t.Fatalf("parse CA: %v", err)
	}
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "webmail.example.org", Roots: pool}); err != nil {
		t.Errorf("certificate does not chain to the CA block: %v", err)
	}

	// What check.certificate runs on a restored node.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Logf("openssl not installed: openssl x509 not tried")
		return
	}
	out, err := exec.Command("openssl", "x509", "-in", paths[0], "-noout", "-subject", "-enddate", "-ext", "subjectAltName").CombinedOutput()
	if err != nil {
		// openssl 1.1 has no -ext: ask for the text form instead.
		out, err = exec.Command("openssl", "x509", "-in", paths[0], "-noout", "-subject", "-enddate", "-text").CombinedOutput()
	}
	if err != nil || !strings.Contains(string(out), "webmail.example.org") || !strings.Contains(string(out), "DNS:webmail.example.org") {
		t.Errorf("openssl x509 cannot read the certificate or misses its names: %v\n%s", err, out)
	}
	if err := exec.Command("openssl", "x509", "-in", paths[0], "-noout", "-checkend", "0").Run(); err != nil {
		t.Errorf("openssl x509 -checkend 0: %v", err)
	}
}

func TestSelfSignedPEM_NeverTheSameKeyTwice(t *testing.T) {
	a, err := SelfSignedPEM("mail.lab.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := SelfSignedPEM("mail.lab.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := pemBlocks(t, []byte(a)), pemBlocks(t, []byte(b))
	if len(ka) != 3 || len(kb) != 3 || string(ka[1].Bytes) == string(kb[1].Bytes) {
		t.Error("two stores got the same private key: keys must be generated per run")
	}
}
