package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func pubKey(t *testing.T, kind string) ssh.PublicKey {
	t.Helper()
	var raw any
	switch kind {
	case "ed25519":
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw = pub
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw = &k.PublicKey
	}
	k, err := ssh.NewPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// What hostkeys makes of a presented key decides whether it may be recorded:
// only a host with no recorded key is "new"; a known host offering another
// key type (what a man in the middle would do) is NEWTYPE, never recorded
// by --yes alone.
func TestKnownState_ClassifiesPresentedKeys(t *testing.T) {
	dir := t.TempDir()
	known := pubKey(t, "ed25519")
	revoked := pubKey(t, "ed25519")
	kh := filepath.Join(dir, "known_hosts")
	content := knownhosts.Line([]string{knownhosts.Normalize("192.0.2.10:22")}, known) + "\n" +
		"@revoked " + knownhosts.Line([]string{knownhosts.Normalize("192.0.2.11:22")}, revoked) + "\n"
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad_known_hosts")
	if err := os.WriteFile(bad, []byte("192.0.2.10 ssh-ed25519 !!!notbase64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		files []string
		host  string
		key   ssh.PublicKey
		want  hostKeyState
	}{
		{"the recorded key", []string{kh}, "192.0.2.10", known, keyKnown},
		{"another key of the recorded type", []string{kh}, "192.0.2.10", pubKey(t, "ed25519"), keyChanged},
		{"a key type never recorded for a known host", []string{kh}, "192.0.2.10", pubKey(t, "ecdsa"), keyNewType},
		{"a host with no recorded key", []string{kh}, "192.0.2.99", pubKey(t, "ed25519"), keyNew},
		{"a revoked key", []string{kh}, "192.0.2.11", revoked, keyRevoked},
		{"no known_hosts file yet", []string{filepath.Join(dir, "missing")}, "192.0.2.10", known, keyNew},
		{"an unparsable known_hosts", []string{bad}, "192.0.2.10", known, keyUnverifiable},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := knownState(c.files, c.host, 22, c.key); got != c.want {
				t.Errorf("knownState = %s, want %s", got, c.want)
			}
		})
	}
}
