package transporttest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prapush/prapush/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// SudoMode says what sudo gives a User of StartSSHD.
type SudoMode int

// The sudo modes of a test user.
const (
	NoSudo         SudoMode = iota // not in sudoers
	SudoNoPassword                 // NOPASSWD: ALL
	SudoPassword                   // ALL, with a password (sudo -n refuses)
)

// User is a non-root login user that exists only inside the sshd's private
// view of /etc (nothing on the host changes).
type User struct {
	Name string
	Sudo SudoMode
	// Password is the user's password (for sudo; ssh logins stay
	// key-only). Empty: no password can match.
	Password string
}

// SSHDOptions configures StartSSHD.
type SSHDOptions struct {
	// IP is the loopback address to listen on (127.0.0.x); default
	// 127.0.0.1. The port is a free one.
	IP string
	// Users are created for this sshd, in addition to root.
	Users []User
	// ClientSigner is accepted for every user; nil generates one. Share
	// one signer between many sshds to dial them all with one key.
	ClientSigner ssh.Signer
	// AuthorizedKeys are accepted for every user too.
	AuthorizedKeys []ssh.PublicKey
	// Hosts are /etc/hosts entries (name → IP) that the sshd and its
	// sessions see before the host's own, e.g. a name that only a bastion
	// resolves to its target.
	Hosts map[string]string
	// Config is appended to the generated sshd_config.
	Config string
}

// SSHD is a real OpenSSH server started by StartSSHD, running in a private
// mount and PID namespace (a clean /root so that root's shell rc files of
// the host are not read, a private /run, private /etc files for Users).
type SSHD struct {
	Addr         string // "127.0.0.x:port"
	Host         string
	Port         int
	HostKey      ssh.PublicKey
	ClientSigner ssh.Signer
	Dir          string // its files: sshd_config, keys, homes

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	stop sync.Once
}

// Log returns what sshd logged so far (LogLevel VERBOSE: connections and
// accepted keys).
func (d *SSHD) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Stop kills the sshd and every session it runs (the PID namespace dies
// with it). t.Cleanup calls it; calling it earlier simulates a dead node.
func (d *SSHD) Stop() {
	d.stop.Do(func() {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	})
}

// KnownHostsLine returns the known_hosts line of this sshd.
func (d *SSHD) KnownHostsLine() string {
	return fmt.Sprintf("[%s]:%d %s", d.Host, d.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(d.HostKey))))
}

// RequireSSHD skips (or fails, in CI) the test when real sshd processes
// cannot be started here: they need /usr/sbin/sshd, unshare and root.
func RequireSSHD(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		testenv.SkipOrFail(t, "no /usr/sbin/sshd (install openssh-server)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.SkipOrFail(t, "no unshare (util-linux)")
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "real sshd tests need root (private mount namespaces)")
	}
}

// StartSSHD starts a real sshd with a fresh host key on opts.IP and a free
// port, and stops it in t.Cleanup. It returns once sshd listens.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	RequireSSHD(t)
	if opts.ClientSigner == nil {
		opts.ClientSigner = NewSigner(t)
	}
	d, err := startSSHD(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(d.Stop)
	return d
}

// StartSSHDs starts n sshds on 127.0.0.2, 127.0.0.3, ... (opts.IP is
// ignored), all accepting one ClientSigner; see StartSSHDsOn.
func StartSSHDs(t testing.TB, n int, opts SSHDOptions) []*SSHD {
	t.Helper()
	if n > 250*256 {
		t.Fatalf("at most %d sshds", 250*256)
	}
	ips := make([]string, n)
	for i := range ips {
		k := i + 2
		ips[i] = fmt.Sprintf("127.0.%d.%d", k/256, k%256)
	}
	return StartSSHDsOn(t, ips, opts)
}

// StartSSHDsOn starts one sshd per loopback address in ips (opts.IP is
// ignored), concurrently, all accepting one ClientSigner, and stops them in
// t.Cleanup. Each has its own host key and free port.
func StartSSHDsOn(t testing.TB, ips []string, opts SSHDOptions) []*SSHD {
	t.Helper()
	RequireSSHD(t)
	if opts.ClientSigner == nil {
		opts.ClientSigner = NewSigner(t)
	}
	n := len(ips)
	ds := make([]*SSHD, n)
	errs := make([]error, n)
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, startParallel)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o := opts
			o.IP = ips[i]
			ds[i], errs[i] = startSSHD(dirs[i], o)
		}()
	}
	wg.Wait()
	for _, d := range ds {
		if d != nil {
			t.Cleanup(d.Stop)
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start sshd on %s: %v", ips[i], err)
		}
	}
	return ds
}

// startParallel bounds concurrent sshd start-ups: beyond a few, they only
// contend for the CPUs.
var startParallel = 16

func startSSHD(dir string, opts SSHDOptions) (*SSHD, error) {
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if ip := net.ParseIP(opts.IP); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%q is not a loopback address", opts.IP)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "prapush-test-host")
	if err != nil {
		return nil, err
	}
	hostKeyFile := filepath.Join(dir, "host_ed25519")
	if err := os.WriteFile(hostKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	var ak strings.Builder
	ak.Write(ssh.MarshalAuthorizedKey(opts.ClientSigner.PublicKey()))
	for _, k := range opts.AuthorizedKeys {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	akFile := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(akFile, []byte(ak.String()), 0o644); err != nil {
		return nil, err
	}
	script, err := namespaceScript(dir, opts)
	if err != nil {
		return nil, err
	}

	// The port is found by binding :0 and released before sshd binds it:
	// another process may take it in between, so a bind failure retries.
	var lastErr error
	for range 5 {
		port, err := freePort(opts.IP)
		if err != nil {
			return nil, err
		}
		d, err := launchSSHD(dir, opts, port, hostKeyFile, akFile, script)
		if err == nil {
			d.HostKey = signer.PublicKey()
			d.ClientSigner = opts.ClientSigner
			return d, nil
		}
		lastErr = err
		var be *bindError
		if !errors.As(err, &be) {
			break
		}
	}
	return nil, lastErr
}

type bindError struct{ log string }

func (e *bindError) Error() string { return "sshd could not bind: " + e.log }

func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// namespaceScript writes the private /etc files and returns the shell
// script run inside the new namespaces before exec'ing sshd.
func namespaceScript(dir string, opts SSHDOptions) (string, error) {
	var b strings.Builder
	b.WriteString("set -e\n")
	// A private /run (sshd needs /run/sshd, which the host may lack) and
	// an empty /root (root's shell rc files on the host are slow).
	b.WriteString("mount -t tmpfs -o mode=0755 tmpfs /run\nmkdir -m 0755 /run/sshd\n")
	b.WriteString("mount -t tmpfs -o mode=0700 tmpfs /root\n")
	bind := func(name, content string, mode os.FileMode) error {
		f := filepath.Join(dir, "etc-"+name)
		if err := os.WriteFile(f, []byte(content), mode); err != nil {
			return err
		}
		if err := os.Chmod(f, mode); err != nil {
			return err
		}
		fmt.Fprintf(&b, "mount --bind %s /etc/%s\n", shq(f), name)
		return nil
	}
	if len(opts.Users) > 0 {
		// Users read the authorized_keys file and live under dir: let
		// them traverse it and its parent (t.TempDir makes both 0700).
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				return "", err
			}
		}
		passwd, err := os.ReadFile("/etc/passwd")
		if err != nil {
			return "", err
		}
		group, err := os.ReadFile("/etc/group")
		if err != nil {
			return "", err
		}
		shadow, err := os.ReadFile("/etc/shadow")
		if err != nil {
			return "", err
		}
		sudoers := "Defaults env_reset\nDefaults !fqdn\nroot ALL=(ALL:ALL) ALL\n"
		p, g, s := string(passwd), string(group), string(shadow)
		for i, u := range opts.Users {
			uid := 23000 + i
			home := filepath.Join(dir, "home", u.Name)
			if err := os.MkdirAll(home, 0o755); err != nil {
				return "", err
			}
			if err := os.Chown(home, uid, uid); err != nil {
				return "", err
			}
			p += fmt.Sprintf("%s:x:%d:%d::%s:/bin/sh\n", u.Name, uid, uid, home)
			g += fmt.Sprintf("%s:x:%d:\n", u.Name, uid)
			// "*": no password can match, yet the account is not locked
			// ("!"), so public key logins work with UsePAM no.
			hash := "*"
			if u.Password != "" {
				cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
				cmd.Stdin = strings.NewReader(u.Password + "\n")
				out, err := cmd.Output()
				if err != nil {
					return "", fmt.Errorf("hash password with openssl: %w", err)
				}
				hash = strings.TrimSpace(string(out))
			}
			s += fmt.Sprintf("%s:%s:19000:0:99999:7:::\n", u.Name, hash)
			switch u.Sudo {
			case SudoNoPassword:
				sudoers += u.Name + " ALL=(ALL:ALL) NOPASSWD: ALL\n"
			case SudoPassword:
				sudoers += u.Name + " ALL=(ALL:ALL) ALL\n"
			}
		}
		for _, f := range []struct {
			name, content string
			mode          os.FileMode
		}{{"passwd", p, 0o644}, {"group", g, 0o644}, {"shadow", s, 0o640}, {"sudoers", sudoers, 0o440}} {
			if err := bind(f.name, f.content, f.mode); err != nil {
				return "", err
			}
		}
	}
	if len(opts.Hosts) > 0 {
		// Start from the host's file: it resolves the machine's own
		// name, which sudo looks up (no DNS query must leave loopback).
		base, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return "", err
		}
		// The extra entries come first: the first match wins, so they
		// can also override a name of the host (even localhost).
		var hosts string
		for name, ip := range opts.Hosts {
			hosts += ip + " " + name + "\n"
		}
		hosts += string(base)
		if err := bind("hosts", hosts, 0o644); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(&b, "exec /usr/sbin/sshd -D -e -f %s\n", shq(filepath.Join(dir, "sshd_config")))
	return b.String(), nil
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func launchSSHD(dir string, opts SSHDOptions, port int, hostKeyFile, akFile, script string) (*SSHD, error) {
	cfg := fmt.Sprintf(`ListenAddress %s:%d
HostKey %s
PidFile none
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
MaxStartups 1000
MaxSessions 100
Subsystem sftp internal-sftp
%s
`, opts.IP, port, hostKeyFile, akFile, opts.Config)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &SSHD{
		Addr: net.JoinHostPort(opts.IP, strconv.Itoa(port)),
		Host: opts.IP,
		Port: port,
		Dir:  dir,
		cmd:  cmd,
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			d.mu.Unlock()
			if !signalled && strings.HasPrefix(line, "Server listening on") {
				signalled = true
				ready <- true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		if !signalled {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if ok {
			return d, nil
		}
		_ = cmd.Wait()
		if strings.Contains(d.Log(), "Bind to port") || strings.Contains(d.Log(), "Cannot bind any address") {
			return nil, &bindError{d.Log()}
		}
		return nil, fmt.Errorf("sshd exited: %s", d.Log())
	case <-time.After(20 * time.Second):
		d.Stop()
		return nil, fmt.Errorf("sshd not listening after 20s: %s", d.Log())
	}
}
