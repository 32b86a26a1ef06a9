package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prapush/prapush/lab/labgen"
)

// TestApply_RestoresTheGeneratedStoresCertificateForOpenSSL restores a
// store written by labgen (the lab's own generator) with APPLY=1: the
// certificate the restore installs is the backup's, and openssl x509 reads
// it and finds the external url, as check.certificate will.
func TestApply_RestoresTheGeneratedStoresCertificateForOpenSSL(t *testing.T) {
	t.Parallel()
	store := filepath.Join(t.TempDir(), "store")
	core := labgen.Node{Name: "core", IP: "10.77.0.11", Tags: []string{"bm/core", "bm/conf", "bm/pgsql", "bm/es"}}
	if _, err := labgen.Generate(store, "ok", labgen.Options{Nodes: []labgen.Node{core}, ExternalURL: "webmail.restored.example"}); err != nil {
		t.Fatal(err)
	}
	confs, _ := filepath.Glob(filepath.Join(store, "dp_spool/rsync/10.77.0.11/bm/conf/*/var/backups/bluemind/work/conf/etc/bm/certs/bm_cert.pem"))
	if len(confs) == 0 {
		t.Fatal("labgen wrote no bm_cert.pem")
	}
	want, err := os.ReadFile(confs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Generation 312 is the newest of three: menu line 3.
	res := run{variant: "bm4es", store: store, stdin: "3\n", knobs: knobs("APPLY", "1", "IPS", "10.77.0.11"),
		after: []string{
			"cat /etc/ssl/certs/bm_cert.pem",
			"openssl x509 -in /etc/ssl/certs/bm_cert.pem -noout -checkend 86400 && openssl x509 -in /etc/ssl/certs/bm_cert.pem -noout -text",
			`[ "$(openssl x509 -in /etc/ssl/certs/bm_cert.pem -noout -pubkey)" = "$(openssl pkey -in /etc/ssl/certs/bm_cert.pem -pubout)" ] && echo key matches`,
		}}.exec(t)
	if res.rc != 0 {
		t.Fatalf("restore rc %d\nstdout %q\nstderr %q", res.rc, res.stdout, res.stderr)
	}
	if res.after[0] != string(want) {
		t.Errorf("/etc/ssl/certs/bm_cert.pem after the restore is not the backup's:\n%s", res.after[0])
	}
	if !strings.Contains(res.after[1], "DNS:webmail.restored.example") || !strings.Contains(res.after[1], "CN = webmail.restored.example") {
		t.Errorf("openssl x509 cannot read the restored certificate or misses the external url:\n%s", res.after[1])
	}
	if res.after[2] != "key matches\n" {
		t.Errorf("the restored key is not the certificate's: %q", res.after[2])
	}
}
