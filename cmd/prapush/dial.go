package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/tasks"
	"github.com/prapush/prapush/transport"
)

// expandHome expands a leading "~/" against $HOME.
func (a *app) expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home := a.env.Getenv("HOME"); home != "" {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

func (a *app) expandAll(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, a.expandHome(p))
	}
	return out
}

// defaultIdentityFiles are tried, when present, when a node names none.
var defaultIdentityFiles = []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"}

// identityFiles returns the key files used for n, expanded.
func (a *app) identityFiles(n inventory.Node) []string {
	if len(n.SSH.IdentityFiles) > 0 {
		return a.expandAll(n.SSH.IdentityFiles)
	}
	var out []string
	for _, f := range a.expandAll(defaultIdentityFiles) {
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// target resolves how to reach n: inventory values, then ~/.ssh/config for
// what the inventory leaves to it (the inventory wins where both say).
func (a *app) target(n inventory.Node) (transport.Target, error) {
	t := transport.Target{
		Name:           n.Name,
		Host:           n.Address,
		Port:           n.SSH.Port,
		User:           n.SSH.User,
		KnownHosts:     a.expandAll(n.SSH.KnownHosts),
		HostKeyPolicy:  transport.HostKeyPolicy(n.SSH.HostKeyPolicy),
		PinnedKey:      n.HostKey,
		Become:         string(n.SSH.Become),
		ConnectTimeout: n.SSH.ConnectTimeout,
		Keepalive:      n.SSH.Keepalive,
	}
	if len(t.KnownHosts) == 0 {
		t.KnownHosts = []string{a.expandHome("~/.ssh/known_hosts")}
	}
	if a.g.acceptNewKeys && t.HostKeyPolicy == transport.HostKeyPolicy(inventory.HostKeyStrict) {
		t.HostKeyPolicy = transport.HostKeyPolicy(inventory.HostKeyAcceptNew)
	}
	jump := n.SSH.Jump
	if n.SSH.SSHConfig != "" {
		cfgPath := a.expandHome(n.SSH.SSHConfig)
		if _, err := os.Stat(cfgPath); err == nil {
			res, err := transport.ResolveSSHConfig(cfgPath, n.Address)
			if err != nil {
				return t, fmt.Errorf("ssh_config %s: %w", cfgPath, err)
			}
			if res.HostName != "" {
				t.Host = res.HostName
			}
			if res.Port != 0 && n.SSH.Port == inventory.DefaultPort {
				t.Port = res.Port
			}
			if res.User != "" && n.SSH.User == inventory.DefaultUser {
				t.User = res.User
			}
			if jump == "" && len(res.Jumps) > 0 {
				t.Jumps = res.Jumps
			}
		}
	}
	if jump != "" {
		hops, err := transport.ParseJump(jump)
		if err != nil {
			return t, fmt.Errorf("jump: %w", err)
		}
		t.Jumps = hops
	}
	return t, nil
}

// authenticator loads keys once per run, up front: the agent, then every
// identity file the selected nodes use. A passphrase is asked once per file,
// only when standard input is a terminal; otherwise encrypted keys are left
// out with a warning.
type authenticator struct {
	signers map[string][]ssh.Signer // by identity file
	agent   func() ([]ssh.Signer, error)
	closers []io.Closer
	// becomePass is the sudo password given with --ask-become-pass.
	becomePass []byte
}

func (a *app) newAuthenticator(nodes []inventory.Node) (*authenticator, error) {
	au := &authenticator{signers: map[string][]ssh.Signer{}}
	if sock := a.env.Getenv("SSH_AUTH_SOCK"); sock != "" {
		signers, closer, err := transport.AgentSigners(sock)
		if err != nil {
			if a.g.verbose {
				fmt.Fprintf(a.env.Stderr, "prapush: warning: ssh-agent: %v\n", err)
			}
		} else {
			au.agent = signers
			au.closers = append(au.closers, closer)
		}
	}
	interactive := isTerminal(a.env.Stdin)
	for _, n := range nodes {
		for _, f := range a.identityFiles(n) {
			if _, done := au.signers[f]; done {
				continue
			}
			var ask func(string) ([]byte, error)
			if interactive {
				ask = func(file string) ([]byte, error) {
					fmt.Fprintf(a.env.Stderr, "Passphrase for %s: ", file)
					pw, err := term.ReadPassword(int(a.env.Stdin.(*os.File).Fd()))
					fmt.Fprintln(a.env.Stderr)
					return pw, err
				}
			}
			s, err := transport.LoadSigners([]string{f}, false, ask)
			if err != nil {
				// An unusable key is left out, not fatal: the agent or
				// another key may still be accepted, and a refusal is then
				// reported per node as ssh.connect.
				fmt.Fprintf(a.env.Stderr, "prapush: warning: node %s: %v (key left out)\n", n.Name, err)
			}
			au.signers[f] = s
		}
	}
	if a.g.askBecomePass {
		if err := a.askBecomePassword(au, nodes); err != nil {
			au.Close()
			return nil, err
		}
	}
	return au, nil
}

// askBecomePassword asks the sudo password once, on the terminal, and
// checks it on ONE node before any other node sees it: a wrong password then
// costs one failed attempt on one node, not an account lock-out on every
// node. The check happens on the first reachable sudo node that really asks
// for a password (a NOPASSWD node would accept anything); when no node asks,
// the password is never used.
func (a *app) askBecomePassword(au *authenticator, nodes []inventory.Node) error {
	var sudoNodes []inventory.Node
	for _, n := range nodes {
		if n.SSH.Become == inventory.BecomeSudo {
			sudoNodes = append(sudoNodes, n)
		}
	}
	if len(sudoNodes) == 0 {
		return nil
	}
	f, ok := a.env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageErr("--ask-become-pass needs a terminal on standard input")
	}
	fmt.Fprint(a.env.Stderr, "sudo password (checked on one node first): ")
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.env.Stderr)
	if err != nil {
		return usageErr("read sudo password: %v", err)
	}
	return a.checkBecomePassword(au, sudoNodes, pw)
}

// checkBecomePassword keeps pw as the sudo password after checking it on
// the first node of sudoNodes that asks for one; a refusal there stops
// everything before any other node is tried.
func (a *app) checkBecomePassword(au *authenticator, sudoNodes []inventory.Node, pw []byte) error {
	au.becomePass = pw
	for _, n := range sudoNodes {
		ctx, cancel := context.WithTimeout(context.Background(), n.SSH.ConnectTimeout+30*time.Second)
		asks, err := a.sudoAsksPassword(ctx, au, n)
		if err != nil || !asks {
			cancel()
			continue // unreachable (reported later by the command) or NOPASSWD
		}
		conn, err := a.dialer(au)(ctx, n)
		if err == nil {
			err = conn.Run(ctx, "true", nil, nil, nil)
			conn.Close()
		}
		cancel()
		if errors.Is(err, transport.ErrPrivilege) {
			return &exitError{code: exitFailed, err: fmt.Errorf("node %s: the sudo password was refused; no other node was tried", n.Name)}
		}
		if err == nil {
			return nil
		}
	}
	return nil
}

// sudoAsksPassword tells whether sudo on n would ask for a password: it
// runs `sudo -n true` as the plain SSH user, with no password given.
func (a *app) sudoAsksPassword(ctx context.Context, au *authenticator, n inventory.Node) (bool, error) {
	t, err := a.target(n)
	if err != nil {
		return false, err
	}
	t.Auth = au.methods(a.identityFiles(n))
	t.Become = ""
	conn, err := transport.Dial(ctx, t)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	err = conn.Run(ctx, "sudo -n true", nil, nil, nil)
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		return true, nil
	}
	return false, err
}

// methods returns the one public-key method offering the agent's keys and
// those of files.
func (au *authenticator) methods(files []string) []ssh.AuthMethod {
	var all []ssh.Signer
	for _, f := range files {
		all = append(all, au.signers[f]...)
	}
	return []ssh.AuthMethod{transport.PublicKeyAuth(au.agent, all)}
}

func (au *authenticator) Close() {
	clear(au.becomePass)
	for _, c := range au.closers {
		_ = c.Close()
	}
}

func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// dialer returns the DialFunc tasks uses to reach a node.
func (a *app) dialer(au *authenticator) tasks.DialFunc {
	return func(ctx context.Context, n inventory.Node) (transport.Conn, error) {
		t, err := a.target(n)
		if err != nil {
			return nil, err
		}
		t.Auth = au.methods(a.identityFiles(n))
		if n.SSH.Become == inventory.BecomeSudo {
			t.BecomePassword = au.becomePass
		}
		return transport.Dial(ctx, t)
	}
}
