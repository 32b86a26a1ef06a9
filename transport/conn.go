package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sshConn is the Conn of Dial.
type sshConn struct {
	t       Target
	client  *ssh.Client   // the target
	clients []*ssh.Client // jump hops then the target, closed in reverse

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu   sync.Mutex
	dead error // set once the connection is lost or closed
	// privOK is true once sudo -n gave root; priv holds a definitive
	// refusal (ErrPrivilege).
	privOK bool
	priv   error
	// privPass is true when root needs BecomePassword (sudo -n refused).
	privPass bool

	// sftpMu is held while the SFTP client opens, which blocks on the
	// peer; it is separate from mu so that markDead never waits on it.
	sftpMu sync.Mutex
	sftp   *sftpSession
}

func newConn(t Target, clients []*ssh.Client) *sshConn {
	c := &sshConn{
		t:       t,
		client:  clients[len(clients)-1],
		clients: clients,
		done:    make(chan struct{}),
	}
	go func() {
		err := c.client.Wait()
		c.markDead(fmt.Errorf("%w: connection to %s lost: %v", ErrUnreachable, t.label(), err))
	}()
	if t.Keepalive > 0 {
		go c.keepalive(t.Keepalive)
	}
	return c
}

// markDead records why the connection is unusable and closes it, which
// unblocks every pending session and SFTP call.
func (c *sshConn) markDead(err error) {
	c.mu.Lock()
	if c.dead == nil {
		c.dead = err
	}
	c.mu.Unlock()
	c.closeClients()
}

func (c *sshConn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func (c *sshConn) closeClients() {
	for i := len(c.clients) - 1; i >= 0; i-- {
		c.clients[i].Close()
	}
}

// keepalive sends keepalive@openssh.com every interval. Any reply (OpenSSH
// answers "failure", which is fine) proves the peer alive; 3 ticks without
// one declare it dead, because a black-holed TCP connection would otherwise
// block Run and ReadFile until the kernel gives up, minutes later.
func (c *sshConn) keepalive(interval time.Duration) {
	const maxMissed = 3
	tick := time.NewTicker(interval)
	defer tick.Stop()
	replies := make(chan error, 1)
	inflight, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-replies:
			inflight = false
			if err != nil {
				c.markDead(fmt.Errorf("%w: keepalive to %s: %v", ErrUnreachable, c.t.label(), err))
				return
			}
			missed = 0
		case <-tick.C:
			if inflight {
				missed++
				if missed >= maxMissed {
					c.markDead(fmt.Errorf("%w: %s did not answer %d keepalives in %s", ErrUnreachable, c.t.label(), maxMissed, maxMissed*interval))
					return
				}
				continue
			}
			inflight = true
			go func() {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				replies <- err
			}()
		}
	}
}

// Close implements Conn.
func (c *sshConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.mu.Lock()
		if c.dead == nil {
			c.dead = fmt.Errorf("connection to %s closed: %w", c.t.label(), net.ErrClosed)
		}
		c.mu.Unlock()
		c.closeClients()
	})
	return nil
}

// lost turns an error of a session or SFTP call into ErrUnreachable when the
// connection is gone, and otherwise returns it unchanged.
func (c *sshConn) lost(err error) error {
	if d := c.deadErr(); d != nil {
		return d
	}
	return err
}

// Run implements Conn.
func (c *sshConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if c.t.Become == "sudo" {
		pass, err := c.checkPrivilege(ctx)
		if err != nil {
			return err
		}
		if !pass {
			cmd = Quote("sudo", "-n", "--", "sh", "-c", cmd)
		} else {
			cmd, stdin = c.withPassword(cmd, stdin)
		}
	}
	return c.run(ctx, cmd, stdin, stdout, stderr)
}

// withPassword wraps cmd in a sudo that reads the password from the first
// line of stdin. -k makes sudo always read it (a cached credential would
// otherwise leave the line to the command); sudo reads it byte by byte,
// so the rest of stdin reaches the command intact.
func (c *sshConn) withPassword(cmd string, stdin io.Reader) (string, io.Reader) {
	line := make([]byte, 0, len(c.t.BecomePassword)+1)
	line = append(append(line, c.t.BecomePassword...), '\n')
	if stdin == nil {
		stdin = bytes.NewReader(nil)
	}
	return Quote("sudo", "-k", "-S", "-p", "", "--", "sh", "-c", cmd), io.MultiReader(bytes.NewReader(line), stdin)
}

// checkPrivilege runs `sudo -n true` once per connection, then, if that
// is refused and a password was given, `sudo -k -S true` with it; it
// caches a definitive answer (not one cut short by ctx or a lost
// connection). pass reports that commands need the password.
func (c *sshConn) checkPrivilege(ctx context.Context) (pass bool, err error) {
	c.mu.Lock()
	ok, pass, priv := c.privOK, c.privPass, c.priv
	c.mu.Unlock()
	if ok {
		return pass, nil
	}
	if priv != nil {
		return false, priv
	}
	var errOut bytes.Buffer
	err = c.run(ctx, "sudo -n true", nil, io.Discard, &errOut)
	var ee *ExitError
	if err != nil && errors.As(err, &ee) && c.t.BecomePassword != nil {
		errOut.Reset()
		pass = true
		cmd, stdin := c.withPassword("true", nil)
		err = c.run(ctx, cmd, stdin, io.Discard, &errOut)
	}
	switch {
	case err == nil:
		c.mu.Lock()
		c.privOK, c.privPass = true, pass
		c.mu.Unlock()
		return pass, nil
	case errors.As(err, &ee):
		// sudo -n exits 1 with "a password is required" when it would
		// prompt, sudo -S exits 1 after a wrong password, and the shell
		// exits 127 when sudo is not installed: root is out of reach.
		what := "sudo -n true"
		if pass {
			what = "sudo with the given password"
		}
		perr := fmt.Errorf("%w on %s: %s exited %d: %s", ErrPrivilege, c.t.label(), what, ee.Status, tail(errOut.Bytes(), 300))
		c.mu.Lock()
		c.priv = perr
		c.mu.Unlock()
		return false, perr
	default:
		return false, err
	}
}

// gateWriter forwards writes until closed, then drops them, so that a
// session still draining after Run returned never writes into the caller's
// buffer behind its back.
type gateWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

// copyBufs are the buffers session output is copied through. x/crypto/ssh
// copies a session's stdout and stderr with io.Copy, which would allocate
// 32 KiB per stream and per command (12 MB for a 100-node verify); the
// ReadFrom below makes io.Copy use these instead.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// ReadFrom copies r into the gate through a pooled buffer.
func (g *gateWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr := g.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// feedStdin copies stdin into the session's stdin pipe through a pooled
// buffer, then closes the pipe (EOF on the remote side). x/crypto/ssh, given
// Session.Stdin, copies it twice, once through an io.Pipe with a 32 KiB
// buffer of its own per session (5 MB for a 100-node verify); the pipe
// taken with StdinPipe has no such copy. A stdin that never ends (the
// cross-node phase of verify) keeps this goroutine until its owner closes
// it.
func feedStdin(w io.WriteCloser, stdin io.Reader) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		m, err := stdin.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = w.Close()
}

func (g *gateWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

const stderrTail = 4096

// run runs cmd as is in a new session.
func (c *sshConn) run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()

	var errTail *tailBuffer
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		errTail = &tailBuffer{max: stderrTail}
		stderr = errTail
	}
	out, errw := &gateWriter{w: stdout}, &gateWriter{w: stderr}
	defer out.close()
	defer errw.close()
	var stdinPipe io.WriteCloser
	if stdin != nil {
		if stdinPipe, err = sess.StdinPipe(); err != nil {
			return fmt.Errorf("stdin of a session on %s: %w", c.t.label(), err)
		}
	}
	sess.Stdout, sess.Stderr = out, errw
	if err := sess.Start(cmd); err != nil {
		return c.lost(fmt.Errorf("%w: start command on %s: %v", ErrUnreachable, c.t.label(), err))
	}
	if stdinPipe != nil {
		go feedStdin(stdinPipe, stdin)
	}
	waitc := make(chan error, 1)
	go func() { waitc <- sess.Wait() }()
	select {
	case err = <-waitc:
	case <-ctx.Done():
		// Ask the remote process to stop, then drop the channel; the
		// gate writers keep late output away from the caller. TERM, not
		// KILL: under sudo the signal reaches sudo, which relays TERM to
		// the command but would die of KILL and leave it running. This
		// is best effort; long work is started detached by the caller.
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		return context.Cause(ctx)
	}
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		x := &ExitError{Status: ee.ExitStatus(), Signal: ee.Signal()}
		if x.Signal != "" {
			x.Status = -1
		}
		if errTail != nil {
			errw.close()
			x.Stderr = tail(errTail.buf, stderrTail)
		}
		return x
	}
	if d := c.deadErr(); d != nil {
		return d
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return &ExitError{Status: -1}
	}
	return fmt.Errorf("%w: run on %s: %v", ErrUnreachable, c.t.label(), err)
}

// newSession opens a session, giving up when ctx ends: opening a channel
// blocks until the peer answers, which a dead peer never does.
func (c *sshConn) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.client.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, c.lost(fmt.Errorf("%w: open session on %s: %v", ErrUnreachable, c.t.label(), r.err))
		}
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
}

// errNoFile is the exit status of the sudo read command when the file does
// not exist, chosen outside cat's own statuses (0, 1).
const errNoFile = 44

// ReadFile implements Conn.
func (c *sshConn) ReadFile(ctx context.Context, name string) ([]byte, error) {
	if c.t.Become == "sudo" {
		q := QuoteArg(name)
		var out bytes.Buffer
		err := c.Run(ctx, fmt.Sprintf("test -e %s || exit %d; exec cat -- %s", q, errNoFile, q), nil, &out, nil)
		var ee *ExitError
		if errors.As(err, &ee) && ee.Status == errNoFile {
			return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return out.Bytes(), nil
	}
	var data []byte
	err := c.withSFTP(ctx, func(cl *sftp.Client) error {
		f, err := cl.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err = io.ReadAll(f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// Upload implements Conn. The data goes to a temporary file next to name,
// which is then renamed over name, so readers never see a partial file.
func (c *sshConn) Upload(ctx context.Context, name string, data []byte, mode fs.FileMode) error {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".prapush-"+randHex())
	if c.t.Become == "sudo" {
		script := fmt.Sprintf("umask 077 && cat > %[1]s && chmod %[2]o %[1]s && mv -f -- %[1]s %[3]s || { rm -f -- %[1]s; exit 1; }",
			QuoteArg(tmp), mode.Perm(), QuoteArg(name))
		if err := c.Run(ctx, script, bytes.NewReader(data), nil, nil); err != nil {
			return fmt.Errorf("upload %s: %w", name, err)
		}
		return nil
	}
	err := c.withSFTP(ctx, func(cl *sftp.Client) error {
		f, err := cl.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return err
		}
		// Chmod before writing: the server creates files 0644, and the
		// data may be meant for root's eyes only.
		err = f.Chmod(mode.Perm())
		if err == nil {
			_, err = f.Write(data)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = cl.PosixRename(tmp, name)
		}
		if err != nil {
			_ = cl.Remove(tmp)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sftpSession is the connection's SFTP client. Once a call using it is
// cancelled it is abandoned: the server may still be busy with that call
// (OpenSSH's sftp-server handles one request at a time), so later calls
// must not queue behind it.
type sftpSession struct {
	cl     *sftp.Client
	broken atomic.Bool
}

// abandon closes s in the background (Close waits for the server) and
// makes the next call open a fresh client. A call running concurrently on
// s fails.
func (s *sftpSession) abandon() {
	if !s.broken.Swap(true) {
		go s.cl.Close()
	}
}

// withSFTP runs op with the connection's SFTP client, opened on first use
// and reused. SFTP calls take no context: when ctx ends first, the client
// is abandoned (unblocking op) and ctx's cause is returned.
func (c *sshConn) withSFTP(ctx context.Context, op func(*sftp.Client) error) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	var (
		mu        sync.Mutex
		cur       *sftpSession
		cancelled bool
	)
	errc := make(chan error, 1)
	go func() {
		s, err := c.sftpClient()
		if err != nil {
			errc <- err
			return
		}
		mu.Lock()
		if cancelled {
			mu.Unlock()
			s.abandon()
			errc <- nil
			return
		}
		cur = s
		mu.Unlock()
		errc <- op(s.cl)
	}()
	select {
	case err := <-errc:
		if err != nil {
			var se *sftp.StatusError
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.As(err, &se) {
				return err
			}
			return c.lost(err)
		}
		return nil
	case <-ctx.Done():
		mu.Lock()
		cancelled = true
		s := cur
		mu.Unlock()
		if s != nil {
			s.abandon()
		}
		return context.Cause(ctx)
	}
}

func (c *sshConn) sftpClient() (*sftpSession, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if d := c.deadErr(); d != nil {
		return nil, d
	}
	if c.sftp != nil && !c.sftp.broken.Load() {
		return c.sftp, nil
	}
	// Opening under the lock serialises first use; later calls share
	// the client, which pipelines concurrent requests itself.
	cl, err := sftp.NewClient(c.client)
	if err != nil {
		return nil, c.lost(fmt.Errorf("%w: open sftp on %s: %v", ErrUnreachable, c.t.label(), err))
	}
	c.sftp = &sftpSession{cl: cl}
	return c.sftp, nil
}
