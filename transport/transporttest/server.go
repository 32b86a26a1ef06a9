// Package transporttest provides SSH servers for tests: an in-process
// x/crypto/ssh server (exec + SFTP, pinned host key) and real OpenSSH sshd
// processes on 127.0.0.x, plus a TCP proxy that can black-hole a link.
package transporttest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ExecFunc handles one exec request: it runs cmd with the session's stdin,
// stdout and stderr and returns the exit status. ctx ends when the client
// sends a signal or closes the session.
type ExecFunc func(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int

// ShellExec runs cmd with `sh -c` on the test machine, as the test user.
func ShellExec(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	// Own process group, so that cancelling kills the whole pipeline.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	default:
		return 255
	}
}

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Exec handles exec requests; nil means ShellExec.
	Exec ExecFunc
	// NoSFTP refuses the sftp subsystem.
	NoSFTP bool
	// AuthorizedKeys are accepted in addition to the server's ClientSigner.
	AuthorizedKeys []ssh.PublicKey
	// ExtraHostKeys are offered besides HostSigner (of other key types).
	ExtraHostKeys []ssh.Signer
	// SFTPHandlers, when set, serve SFTP through pkg/sftp's request
	// server instead of the real file system (to inject slow or failing
	// files).
	SFTPHandlers *sftp.Handlers
}

// Server is an in-process SSH server on 127.0.0.1. SFTP serves the real
// file system of the test machine (use t.TempDir paths).
type Server struct {
	Addr         string // "127.0.0.1:port"
	Host         string
	Port         int
	HostKey      ssh.PublicKey // pin it (Fingerprint) or put it in a known_hosts
	HostSigner   ssh.Signer
	ClientSigner ssh.Signer // a key the server accepts, for any user

	opts  ServerOptions
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// NewSigner returns a fresh ed25519 signer (generated at test time: no
// private key is ever committed).
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	return s
}

// NewServer starts an in-process SSH server on 127.0.0.1:0, stopped in
// t.Cleanup.
func NewServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if opts.Exec == nil {
		opts.Exec = ShellExec
	}
	s := &Server{
		HostSigner:   NewSigner(t),
		ClientSigner: NewSigner(t),
		opts:         opts,
		conns:        map[net.Conn]struct{}{},
	}
	s.HostKey = s.HostSigner.PublicKey()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port

	authorized := map[string]bool{string(s.ClientSigner.PublicKey().Marshal()): true}
	for _, k := range opts.AuthorizedKeys {
		authorized[string(k.Marshal())] = true
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if authorized[string(k.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(s.HostSigner)
	for _, k := range opts.ExtraHostKeys {
		cfg.AddHostKey(k)
	}

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if !s.track(nc) {
				nc.Close()
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.untrack(nc)
				s.serveConn(nc, cfg)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	nc.Close()
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	s.done = true
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

func (s *Server) serveConn(nc net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // answers keepalive@openssh.com with "failure"
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(ch, creqs)
		}()
	}
}

func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var finished chan struct{} // non-nil once a command or subsystem started
	for req := range reqs {
		switch {
		case req.Type == "exec" && finished == nil:
			var p struct{ Cmd string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				req.Reply(false, nil)
				continue
			}
			finished = make(chan struct{})
			req.Reply(true, nil)
			go func() {
				defer close(finished)
				status := s.opts.Exec(ctx, p.Cmd, ch, ch, ch.Stderr())
				ch.CloseWrite()
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				ch.Close()
			}()
		case req.Type == "subsystem" && finished == nil && !s.opts.NoSFTP:
			var p struct{ Name string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil || p.Name != "sftp" {
				req.Reply(false, nil)
				continue
			}
			var serve func() error
			var closeSrv func() error
			if h := s.opts.SFTPHandlers; h != nil {
				srv := sftp.NewRequestServer(ch, *h)
				serve, closeSrv = srv.Serve, srv.Close
			} else {
				srv, err := sftp.NewServer(ch)
				if err != nil {
					req.Reply(false, nil)
					continue
				}
				serve, closeSrv = srv.Serve, srv.Close
			}
			finished = make(chan struct{})
			req.Reply(true, nil)
			go func() {
				defer close(finished)
				_ = serve()
				_ = closeSrv()
			}()
		case req.Type == "signal":
			cancel()
			req.Reply(true, nil)
		case req.Type == "env":
			req.Reply(true, nil)
		default:
			req.Reply(false, nil)
		}
	}
	// The channel is closed: stop the command and wait for it.
	cancel()
	ch.Close()
	if finished != nil {
		<-finished
	}
}
