package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport/transporttest"
)

// sudoNodes starts real sshd nodes whose user "operator" needs a password
// for sudo ("right"), and returns them as inventory nodes in order, with
// an app that reaches them.
func sudoNodes(t *testing.T, n int, first transporttest.SudoMode) (*app, *authenticator, []inventory.Node, []*transporttest.SSHD) {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	signer := writeKey(t, keyFile)
	var ds []*transporttest.SSHD
	for i := 0; i < n; i++ {
		mode := transporttest.SudoPassword
		if i == 0 {
			mode = first
		}
		ds = append(ds, transporttest.StartSSHDsOn(t, []string{"127.0.0." + string(rune('2'+i))}, transporttest.SSHDOptions{
			Users:        []transporttest.User{{Name: "operator", Sudo: mode, Password: "right"}},
			ClientSigner: signer,
		})[0])
	}
	kh := filepath.Join(dir, "known_hosts")
	var lines []string
	for _, d := range ds {
		lines = append(lines, d.KnownHostsLine())
	}
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []inventory.Node
	for i, d := range ds {
		nodes = append(nodes, inventory.Node{
			Name: "n" + string(rune('1'+i)), IP: netip.MustParseAddr(d.Host), Address: d.Host,
			SSH: inventory.SSH{User: "operator", Port: d.Port, IdentityFiles: []string{keyFile}, KnownHosts: []string{kh},
				HostKeyPolicy: inventory.HostKeyStrict, Become: inventory.BecomeSudo, ConnectTimeout: 5 * time.Second, Keepalive: 15 * time.Second},
		})
	}
	a := &app{g: &globals{output: "text", color: "never"}, env: &Env{Stdin: &bytes.Buffer{}, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}}
	au, err := a.newAuthenticator(nodes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(au.Close)
	return a, au, nodes, ds
}

// writeKey writes a fresh, unencrypted ed25519 key file (made at test
// time) and returns its signer.
func writeKey(t *testing.T, path string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A wrong sudo password is tried on ONE node only: the first node that asks
// refuses it and no other node is contacted, so it cannot lock the account
// everywhere. A NOPASSWD first node cannot check it: the next node does.
func TestBecomePassword_AWrongOneIsTriedOnOneNodeOnly(t *testing.T) {
	a, au, nodes, ds := sudoNodes(t, 3, transporttest.SudoNoPassword)
	err := a.checkBecomePassword(au, nodes, []byte("wrong"))
	if code := exitCode(&bytes.Buffer{}, err); code != exitFailed || !strings.Contains(err.Error(), "node n2") {
		t.Fatalf("wrong password: %v (exit %d), want exit 1 naming n2 (n1 is NOPASSWD and cannot check it)", err, code)
	}
	if log := ds[1].Log(); !strings.Contains(log, "Accepted publickey") {
		t.Fatalf("the sshd log does not show logins, the next assertion would prove nothing:\n%s", log)
	}
	if log := ds[2].Log(); strings.Contains(log, "Accepted publickey") {
		t.Errorf("the third node was contacted after the password was refused on the second:\n%s", log)
	}
	if err := a.checkBecomePassword(au, nodes, []byte("right")); err != nil {
		t.Errorf("right password: %v", err)
	}
}
