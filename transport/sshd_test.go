package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/transport"
	"github.com/prapush/prapush/transport/transporttest"
)

// strictTarget dials d as root with d's client key, strictly checked
// against the known_hosts file kh.
func strictTarget(d *transporttest.SSHD, kh string) transport.Target {
	return transport.Target{
		Name:          "node",
		Host:          d.Host,
		Port:          d.Port,
		User:          "root",
		Auth:          auth(d.ClientSigner),
		KnownHosts:    []string{kh},
		HostKeyPolicy: transport.Strict,
	}
}

func TestSSHD_StrictDialWithKnownKeyRunsAsRoot(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	c := dial(t, strictTarget(d, knownHosts(t, d.KnownHostsLine())))
	var out bytes.Buffer
	if err := c.Run(t.Context(), "id -u; echo $HOME", nil, &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.String() != "0\n/root\n" {
		t.Fatalf("stdout = %q, want uid 0 and /root", out.String())
	}
	// SFTP on a real sshd: upload then read back, and a missing file.
	f := filepath.Join(t.TempDir(), "up.txt")
	if err := c.Upload(t.Context(), f, []byte("payload"), 0o640); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got, err := c.ReadFile(t.Context(), f); err != nil || string(got) != "payload" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	if _, err := c.ReadFile(t.Context(), f+".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestSSHD_UnknownHostKeyIsRefusedWhenStrict(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	kh := knownHosts(t) // empty
	_, err := transport.Dial(t.Context(), strictTarget(d, kh))
	wantIs(t, err, transport.ErrHostKey)
	var he *transport.HostKeyError
	if !errors.As(err, &he) || he.Kind != transport.HostKeyUnknown {
		t.Fatalf("error = %v, want an unknown-key HostKeyError", err)
	}
	if data, _ := os.ReadFile(kh); len(data) != 0 {
		t.Fatalf("strict dial wrote to known_hosts: %q", data)
	}
}

func TestSSHD_ChangedHostKeyIsRefusedEvenWithAcceptNew(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	// Record another key of the same type for this host:port.
	other := transporttest.NewSigner(t).PublicKey()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := transport.AddKnownHost(kh, d.Host, d.Port, other); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(kh)
	tg := strictTarget(d, kh)
	tg.HostKeyPolicy = transport.AcceptNew
	_, err := transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrHostKey)
	var he *transport.HostKeyError
	if !errors.As(err, &he) || he.Kind != transport.HostKeyChanged || he.Known != kh+":1" || he.Fingerprint != transport.Fingerprint(d.HostKey) {
		t.Fatalf("error = %#v, want a changed-key HostKeyError pointing at %s:1", err, kh)
	}
	if after, _ := os.ReadFile(kh); !bytes.Equal(before, after) {
		t.Fatalf("accept-new modified known_hosts after a key change")
	}
}

func TestSSHD_AcceptNewRecordsTheKeyThenStrictPasses(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts") // neither exists yet
	tg := strictTarget(d, kh)
	tg.HostKeyPolicy = transport.AcceptNew
	c := dial(t, tg)
	c.Close()
	data, err := os.ReadFile(kh)
	if err != nil || !strings.HasPrefix(string(data), "["+d.Host+"]:") {
		t.Fatalf("known_hosts = %q, %v; want a [host]:port entry", data, err)
	}
	if st, _ := os.Stat(kh); st.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts mode = %v, want 0600", st.Mode().Perm())
	}
	tg.HostKeyPolicy = transport.Strict
	c = dial(t, tg)
	if err := c.Run(t.Context(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestSSHD_EnrolmentThenStrictDialWorks(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	tg := strictTarget(d, kh)
	keys, err := transport.FetchHostKeys(t.Context(), tg)
	if err != nil {
		t.Fatalf("FetchHostKeys: %v", err)
	}
	if len(keys) != 1 || transport.Fingerprint(keys[0]) != transport.Fingerprint(d.HostKey) {
		t.Fatalf("FetchHostKeys returned %d keys, want exactly the sshd's host key", len(keys))
	}
	for _, k := range keys {
		if err := transport.AddKnownHost(kh, d.Host, d.Port, k); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, tg)
	if err := c.Run(t.Context(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestSSHD_WrongKeyIsAuthRefused(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	tg := strictTarget(d, knownHosts(t, d.KnownHostsLine()))
	tg.Auth = auth(transporttest.NewSigner(t))
	_, err := transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrAuth)
}

func TestSSHD_StoppedNodeIsUnreachable(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	d.Stop() // closed port
	_, err := transport.Dial(t.Context(), strictTarget(d, knownHosts(t, d.KnownHostsLine())))
	wantIs(t, err, transport.ErrUnreachable)
}

func TestSSHD_PeerThatFreezesMidSessionIsUnreachableThanksToKeepalive(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2"})
	p := transporttest.NewProxy(t, d.Addr)
	// The proxy is 127.0.0.1:port while the known key is recorded for the
	// sshd's address: pin the key instead.
	tg := strictTarget(d, "")
	tg.Host, tg.Port, tg.KnownHosts = p.Host, p.Port, nil
	tg.HostKeyPolicy, tg.PinnedKey = transport.Pinned, transport.Fingerprint(d.HostKey)
	tg.Keepalive = 100 * time.Millisecond
	c := dial(t, tg)
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- c.Run(t.Context(), "echo started; sleep 3600", nil, writerFunc(func(b []byte) {
			select {
			case <-started:
			default:
				close(started)
			}
		}), nil)
	}()
	<-started
	p.Blackhole()
	err := <-errc // without keepalive this blocks for an hour (test timeout)
	wantIs(t, err, transport.ErrUnreachable)
	// Later calls fail the same way, at once.
	_, err = c.ReadFile(t.Context(), "/etc/hostname")
	wantIs(t, err, transport.ErrUnreachable)
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func TestSSHD_ProxyJumpReachesATargetOnlyTheBastionCanResolve(t *testing.T) {
	t.Parallel()
	target := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.3"})
	// Only the bastion resolves "localhost" to the target's 127.0.0.3;
	// here it is 127.0.0.1, where nothing listens on the target's port, so
	// the connection can only have gone through the bastion's forward
	// (and no name ever needs DNS).
	const name = "localhost"
	bastion := transporttest.StartSSHD(t, transporttest.SSHDOptions{
		IP:           "127.0.0.2",
		ClientSigner: target.ClientSigner,
		Hosts:        map[string]string{name: target.Host},
	})
	kh := knownHosts(t, bastion.KnownHostsLine())
	if err := transport.AddKnownHost(kh, name, target.Port, target.HostKey); err != nil {
		t.Fatal(err)
	}
	tg := transport.Target{
		Name: "jumped", Host: name, Port: target.Port, User: "root",
		Jumps:         []transport.Hop{{Host: bastion.Host, Port: bastion.Port}},
		Auth:          auth(target.ClientSigner),
		KnownHosts:    []string{kh},
		HostKeyPolicy: transport.Strict,
	}
	direct := tg
	direct.Jumps = nil
	if _, err := transport.Dial(t.Context(), direct); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("direct dial to %s: %v; the test needs a target reachable only via the bastion", name, err)
	}
	c := dial(t, tg)
	var out bytes.Buffer
	if err := c.Run(t.Context(), `echo "$SSH_CONNECTION"`, nil, &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f := strings.Fields(out.String()); len(f) != 4 || f[2] != target.Host {
		t.Fatalf("SSH_CONNECTION = %q, want a connection to %s", out.String(), target.Host)
	}
	if !strings.Contains(target.Log(), "on "+target.Host+" port") || !strings.Contains(target.Log(), "Accepted publickey for root") {
		t.Fatalf("target sshd log shows no login:\n%s", target.Log())
	}
	if !strings.Contains(bastion.Log(), "Accepted publickey for root") {
		t.Fatalf("bastion sshd log shows no login:\n%s", bastion.Log())
	}
}

func TestSSHD_ProxyJumpVerifiesTheBastionHostKey(t *testing.T) {
	t.Parallel()
	target := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.3"})
	bastion := transporttest.StartSSHD(t, transporttest.SSHDOptions{IP: "127.0.0.2", ClientSigner: target.ClientSigner})
	kh := knownHosts(t, target.KnownHostsLine()) // bastion unknown
	tg := strictTarget(target, kh)
	tg.Jumps = []transport.Hop{{Host: bastion.Host, Port: bastion.Port}}
	_, err := transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrHostKey)
	var he *transport.HostKeyError
	if !errors.As(err, &he) || !strings.Contains(he.Host, bastion.Host) {
		t.Fatalf("error = %v, want the bastion's key refused", err)
	}
}

func TestSSHD_SudoNoPasswordGivesRoot(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{
		IP:    "127.0.0.2",
		Users: []transporttest.User{{Name: "deploy", Sudo: transporttest.SudoNoPassword}},
	})
	tg := strictTarget(d, knownHosts(t, d.KnownHostsLine()))
	tg.User, tg.Become = "deploy", "sudo"
	c := dial(t, tg)
	var out bytes.Buffer
	if err := c.Run(t.Context(), "id -u; echo 'quoted $HOME'", nil, &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.String() != "0\nquoted $HOME\n" {
		t.Fatalf("stdout = %q, want uid 0 and the quoted text intact", out.String())
	}
	// Files are read and written as root through sudo.
	f := filepath.Join(d.Dir, "root-only.txt")
	if err := c.Upload(t.Context(), f, []byte("secret"), 0o600); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("uploaded file: %v %v", st, err)
	}
	if got, err := c.ReadFile(t.Context(), f); err != nil || string(got) != "secret" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	if _, err := c.ReadFile(t.Context(), f+".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile(missing) = %v, want fs.ErrNotExist", err)
	}
	// Without become the same user is not root: the check is real.
	tg.Become = ""
	plain := dial(t, tg)
	out.Reset()
	if err := plain.Run(t.Context(), "id -u", nil, &out, nil); err != nil || out.String() == "0\n" {
		t.Fatalf("without sudo: id -u = %q, %v", out.String(), err)
	}
}

func TestSSHD_SudoAskingAPasswordIsErrPrivilege(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{
		IP:    "127.0.0.2",
		Users: []transporttest.User{{Name: "operator", Sudo: transporttest.SudoPassword}},
	})
	tg := strictTarget(d, knownHosts(t, d.KnownHostsLine()))
	tg.User, tg.Become = "operator", "sudo"
	c := dial(t, tg)
	err := c.Run(t.Context(), "id -u", nil, nil, nil)
	wantIs(t, err, transport.ErrPrivilege)
	_, err = c.ReadFile(context.Background(), "/etc/hostname")
	wantIs(t, err, transport.ErrPrivilege)
}

func TestStartSSHDs_StartsOneServerPerLoopbackAddress(t *testing.T) {
	ds := transporttest.StartSSHDs(t, 3, transporttest.SSHDOptions{})
	var lines []string
	for _, d := range ds {
		lines = append(lines, d.KnownHostsLine())
	}
	kh := knownHosts(t, lines...)
	for i, d := range ds {
		if want := "127.0.0." + strconv.Itoa(i+2); d.Host != want {
			t.Fatalf("sshd %d listens on %s, want %s", i, d.Host, want)
		}
		c := dial(t, strictTarget(d, kh))
		var out bytes.Buffer
		if err := c.Run(t.Context(), `echo "$SSH_CONNECTION"`, nil, &out, nil); err != nil {
			t.Fatalf("Run on %s: %v", d.Addr, err)
		}
		if f := strings.Fields(out.String()); len(f) != 4 || f[2] != d.Host {
			t.Fatalf("SSH_CONNECTION on %s = %q", d.Addr, out.String())
		}
	}
}

func TestSSHD_SudoWithTheRightPasswordGivesRootAndKeepsStdin(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{
		IP:    "127.0.0.2",
		Users: []transporttest.User{{Name: "operator", Sudo: transporttest.SudoPassword, Password: "s3cret pass"}},
	})
	tg := strictTarget(d, knownHosts(t, d.KnownHostsLine()))
	tg.User, tg.Become, tg.BecomePassword = "operator", "sudo", []byte("s3cret pass")
	c := dial(t, tg)
	var out bytes.Buffer
	if err := c.Run(t.Context(), "id -u; cat", strings.NewReader("from stdin\n"), &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.String() != "0\nfrom stdin\n" {
		t.Fatalf("stdout = %q, want uid 0 and stdin without the password line", out.String())
	}
	f := filepath.Join(d.Dir, "up.txt")
	if err := c.Upload(t.Context(), f, []byte("data"), 0o600); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got, err := os.ReadFile(f); err != nil || string(got) != "data" {
		t.Fatalf("uploaded %q, %v", got, err)
	}
}

func TestSSHD_SudoWithAWrongPasswordIsErrPrivilege(t *testing.T) {
	t.Parallel()
	d := transporttest.StartSSHD(t, transporttest.SSHDOptions{
		IP:    "127.0.0.2",
		Users: []transporttest.User{{Name: "operator", Sudo: transporttest.SudoPassword, Password: "right"}},
	})
	tg := strictTarget(d, knownHosts(t, d.KnownHostsLine()))
	tg.User, tg.Become, tg.BecomePassword = "operator", "sudo", []byte("wr0ng-Pa55")
	c := dial(t, tg)
	err := c.Run(t.Context(), "id -u", nil, nil, nil)
	wantIs(t, err, transport.ErrPrivilege)
	if strings.Contains(err.Error(), "wr0ng-Pa55") {
		t.Fatalf("error reveals the password: %v", err)
	}
}
