package transport_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prapush/prapush/transport"
	"github.com/prapush/prapush/transport/transporttest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// writeKey writes a fresh ed25519 private key (encrypted when passphrase is
// not empty) and returns its file and public key.
func writeKey(t *testing.T, dir, name, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, name)
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, name, []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return f, sp
}

func TestLoadSigners_ReadsPlainAndEncryptedKeys(t *testing.T) {
	dir := t.TempDir()
	plain, plainPub := writeKey(t, dir, "id_plain", "")
	enc, encPub := writeKey(t, dir, "id_enc", "correct horse")
	var asked []string
	signers, err := transport.LoadSigners([]string{plain, enc}, false, func(file string) ([]byte, error) {
		asked = append(asked, file)
		return []byte("correct horse"), nil
	})
	if err != nil {
		t.Fatalf("LoadSigners: %v", err)
	}
	if len(signers) != 2 || transport.Fingerprint(signers[0].PublicKey()) != transport.Fingerprint(plainPub) ||
		transport.Fingerprint(signers[1].PublicKey()) != transport.Fingerprint(encPub) {
		t.Fatalf("LoadSigners returned the wrong keys")
	}
	if len(asked) != 1 || asked[0] != enc {
		t.Fatalf("passphrase asked for %v, want only %s", asked, enc)
	}
}

func TestLoadSigners_EncryptedKeyWithoutPassphraseSourceIsAClearError(t *testing.T) {
	enc, _ := writeKey(t, t.TempDir(), "id_enc", "secret")
	_, err := transport.LoadSigners([]string{enc}, false, nil)
	if err == nil || !strings.Contains(err.Error(), enc) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("error = %v, want one naming the encrypted key file", err)
	}
}

func TestLoadSigners_WrongPassphraseFails(t *testing.T) {
	enc, _ := writeKey(t, t.TempDir(), "id_enc", "secret")
	_, err := transport.LoadSigners([]string{enc}, false, func(string) ([]byte, error) { return []byte("wrong"), nil })
	if err == nil {
		t.Fatal("LoadSigners accepted a wrong passphrase")
	}
}

func TestLoadSigners_MissingFileIsSkippedOnlyWhenAsked(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "id_rsa")
	if _, err := transport.LoadSigners([]string{missing}, false, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v, want os.ErrNotExist", err)
	}
	s, err := transport.LoadSigners([]string{missing}, true, nil)
	if err != nil || len(s) != 0 {
		t.Fatalf("skipMissing: %d signers, %v", len(s), err)
	}
}

// An agent and a key file each hold one key; the server accepts only the
// file's. Both must be offered within the single publickey method.
func TestPublicKeyAuth_OffersAgentAndFileKeysInOneMethod(t *testing.T) {
	keyring := agent.NewKeyring()
	_, agentPriv, _ := ed25519.GenerateKey(rand.Reader)
	if err := keyring.Add(agent.AddedKey{PrivateKey: agentPriv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(keyring, c) }()
		}
	}()
	agentSigners, closer, err := transport.AgentSigners(sock)
	if err != nil {
		t.Fatalf("AgentSigners: %v", err)
	}
	defer closer.Close()
	if s, err := agentSigners(); err != nil || len(s) != 1 {
		t.Fatalf("agent signers: %d, %v", len(s), err)
	}

	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	tg := pinnedTarget(s)
	tg.Auth = []ssh.AuthMethod{transport.PublicKeyAuth(agentSigners, []ssh.Signer{s.ClientSigner})}
	c := dial(t, tg)
	if err := c.Run(t.Context(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
