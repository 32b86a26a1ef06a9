package transport_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prapush/prapush/transport"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestResolveSSHConfig_HostBlockSettingsAndMultiHopJump(t *testing.T) {
	f := writeConfig(t, `
Host bm-core
    HostName 10.0.0.10
    User admin
    Port 2222
    IdentityFile ~/.ssh/id_bm
    ProxyJump bastion1,ops@bastion2:2200

Host bastion1
    HostName 192.0.2.1
    User jump
    Port 22022

Host *
    IdentityFile ~/.ssh/id_ed25519
`)
	got, err := transport.ResolveSSHConfig(f, "bm-core")
	if err != nil {
		t.Fatalf("ResolveSSHConfig: %v", err)
	}
	want := transport.Resolved{
		HostName:      "10.0.0.10",
		User:          "admin",
		Port:          2222,
		IdentityFiles: []string{"~/.ssh/id_bm", "~/.ssh/id_ed25519"},
		Jumps: []transport.Hop{
			{User: "jump", Host: "192.0.2.1", Port: 22022},
			{User: "ops", Host: "bastion2", Port: 2200},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolved\n got %+v\nwant %+v", got, want)
	}
}

func TestResolveSSHConfig_UnknownAliasAndMissingFileResolveToNothing(t *testing.T) {
	f := writeConfig(t, "Host other\n    User x\n")
	got, err := transport.ResolveSSHConfig(f, "bm-core")
	if err != nil || !reflect.DeepEqual(got, transport.Resolved{}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	got, err = transport.ResolveSSHConfig(filepath.Join(t.TempDir(), "none"), "bm-core")
	if err != nil || !reflect.DeepEqual(got, transport.Resolved{}) {
		t.Fatalf("missing file: got %+v, %v", got, err)
	}
}

func TestResolveSSHConfig_RefusesWhatItCannotHonour(t *testing.T) {
	for name, cfg := range map[string]string{
		"ProxyCommand":     "Host bm-core\n    ProxyCommand nc %h %p\n",
		"Match host":       "Match host bm-core\n    User x\n",
		"Match all":        "Match all\n    User x\n",
		"Match exec":       "Match exec \"true\"\n    User x\n",
		"ProxyJump bad":    "Host bm-core\n    ProxyJump user@\n",
		"Port not numeric": "Host bm-core\n    Port ssh\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := transport.ResolveSSHConfig(writeConfig(t, cfg), "bm-core")
			if err == nil {
				t.Fatalf("no error for %q", cfg)
			}
		})
	}
	// A ProxyCommand or Match for another alias does not matter.
	f := writeConfig(t, "Match host other\n    User x\nHost other2\n    ProxyCommand nc %h %p\nHost bm-core\n    User y\n")
	got, err := transport.ResolveSSHConfig(f, "bm-core")
	if err != nil || got.User != "y" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestParseJump_Forms(t *testing.T) {
	hops, err := transport.ParseJump("a, u@b:2022,ssh://v@c:23,[::1]:24")
	if err != nil {
		t.Fatal(err)
	}
	want := []transport.Hop{{Host: "a"}, {User: "u", Host: "b", Port: 2022}, {User: "v", Host: "c", Port: 23}, {Host: "::1", Port: 24}}
	if !reflect.DeepEqual(hops, want) {
		t.Fatalf("got %+v", hops)
	}
	for _, bad := range []string{"", "u@", "h:0", "h:99999", "a,,b"} {
		if _, err := transport.ParseJump(bad); err == nil {
			t.Errorf("ParseJump(%q) accepted", bad)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("empty error")
		}
	}
}
