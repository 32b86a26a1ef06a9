package transport_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prapush/prapush/transport"
	"golang.org/x/crypto/ssh"
)

// knownHosts writes lines to a fresh known_hosts file and returns its path.
func knownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "known_hosts")
	var data []byte
	for _, l := range lines {
		data = append(data, l+"\n"...)
	}
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func dial(t *testing.T, tg transport.Target) transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, tg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func auth(s ssh.Signer) []ssh.AuthMethod {
	return []ssh.AuthMethod{transport.PublicKeyAuth(nil, []ssh.Signer{s})}
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one matching %v", err, target)
	}
	for _, other := range []error{transport.ErrUnreachable, transport.ErrAuth, transport.ErrHostKey, transport.ErrPrivilege} {
		if other != target && errors.Is(err, other) {
			t.Fatalf("error %v matches %v as well as %v", err, other, target)
		}
	}
}
