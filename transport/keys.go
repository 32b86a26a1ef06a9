package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// LoadSigners reads the private keys in files. A missing file is an error
// unless skipMissing is set (for the default ~/.ssh/id_* files, which may
// not all exist). An encrypted key is decrypted with the passphrase that
// passphrase returns for its file; with a nil passphrase, an encrypted key
// is an error that names the file.
func LoadSigners(files []string, skipMissing bool, passphrase func(file string) ([]byte, error)) ([]ssh.Signer, error) {
	var signers []ssh.Signer
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			if skipMissing && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("load key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			if passphrase == nil {
				return nil, fmt.Errorf("load key %s: key is encrypted and no passphrase can be asked (use the agent or a terminal)", f)
			}
			pass, perr := passphrase(f)
			if perr != nil {
				return nil, fmt.Errorf("load key %s: %w", f, perr)
			}
			s, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
			clear(pass)
		}
		if err != nil {
			return nil, fmt.Errorf("load key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	return signers, nil
}

// AgentSigners connects to the ssh-agent listening on the unix socket sock
// and returns a function listing its keys (asked at each authentication,
// so a key added later is used), and the closer of the agent connection.
// The agent client is safe for concurrent use by many dials.
func AgentSigners(sock string) (func() ([]ssh.Signer, error), io.Closer, error) {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to ssh-agent: %w", err)
	}
	return agent.NewClient(nc).Signers, nc, nil
}

// PublicKeyAuth combines the agent's keys (agentSigners may be nil) and
// signers into the single "publickey" method that x/crypto/ssh needs: it
// tries each method name only once, so keys split across two methods would
// never all be offered. Agent keys come first, as with OpenSSH.
func PublicKeyAuth(agentSigners func() ([]ssh.Signer, error), signers []ssh.Signer) ssh.AuthMethod {
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var all []ssh.Signer
		if agentSigners != nil {
			// An agent that fails is skipped: the files may still work.
			if s, err := agentSigners(); err == nil {
				all = append(all, s...)
			}
		}
		return append(all, signers...), nil
	})
}

// errGotKey stops a handshake once the host key is known.
var errGotKey = errors.New("host key received")

// FetchHostKeys returns the host keys t's host presents, one per key type
// it offers (ed25519, ecdsa, rsa), for enrolment: nothing is verified or
// authenticated on the target itself (the jump hosts, if any, are dialled
// and verified as usual). Show the fingerprints to a human before
// AddKnownHost.
func FetchHostKeys(ctx context.Context, t Target) ([]ssh.PublicKey, error) {
	t = t.withDefaults()
	db, err := hostKeyDBFor(t.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("fetch host keys of %s: %w", t.label(), err)
	}
	var jumps []*ssh.Client
	defer func() {
		for i := len(jumps) - 1; i >= 0; i-- {
			jumps[i].Close()
		}
	}()
	for _, h := range t.Jumps {
		var prev *ssh.Client
		if len(jumps) > 0 {
			prev = jumps[len(jumps)-1]
		}
		policy := t.HostKeyPolicy
		if policy == Pinned {
			policy = Strict
		}
		c, err := dialHop(ctx, prev, h, t, db, policy, "", nil)
		if err != nil {
			return nil, fmt.Errorf("fetch host keys of %s via jump %s: %w", t.label(), h, err)
		}
		jumps = append(jumps, c)
	}
	var prev *ssh.Client
	if len(jumps) > 0 {
		prev = jumps[len(jumps)-1]
	}
	algos := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512}
	var keys []ssh.PublicKey
	seen := map[string]bool{}
	var firstErr error
	for _, a := range algos {
		var got ssh.PublicKey
		cfg := &ssh.ClientConfig{
			User:              t.User,
			HostKeyAlgorithms: []string{a},
			HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
				got = k
				return errGotKey
			},
		}
		_, err := dialHop(ctx, prev, Hop{User: t.User, Host: t.Host, Port: t.Port}, t, db, Strict, "", cfg)
		if got != nil {
			if fp := Fingerprint(got); !seen[fp] {
				seen[fp] = true
				keys = append(keys, got)
			}
			continue
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		// A server without this key type fails the negotiation; any other
		// failure (unreachable) is kept for when no key came back at all.
		var neg *ssh.AlgorithmNegotiationError
		if !errors.As(err, &neg) && firstErr == nil {
			firstErr = err
		}
	}
	if len(keys) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no host key offered")
		}
		return nil, fmt.Errorf("fetch host keys of %s: %w", t.label(), firstErr)
	}
	return keys, nil
}
