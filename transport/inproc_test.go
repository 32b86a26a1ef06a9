package transport_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/prapush/prapush/transport"
	"github.com/prapush/prapush/transport/transporttest"
	"golang.org/x/crypto/ssh"
)

func pinnedTarget(s *transporttest.Server) transport.Target {
	return transport.Target{
		Name:          "inproc",
		Host:          s.Host,
		Port:          s.Port,
		User:          "root",
		Auth:          auth(s.ClientSigner),
		HostKeyPolicy: transport.Pinned,
		PinnedKey:     transport.Fingerprint(s.HostKey),
	}
}

func TestDial_PinnedHostKeyIsAccepted(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	c := dial(t, pinnedTarget(s))
	var out bytes.Buffer
	if err := c.Run(t.Context(), transport.Quote("echo", "hello world"), nil, &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := out.String(); got != "hello world\n" {
		t.Fatalf("stdout = %q", got)
	}
}

func TestDial_PinnedHostKeyMismatchIsRefused(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	tg := pinnedTarget(s)
	tg.PinnedKey = transport.Fingerprint(transporttest.NewSigner(t).PublicKey())
	_, err := transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrHostKey)
	var he *transport.HostKeyError
	if !errors.As(err, &he) || he.Kind != transport.HostKeyPinnedMismatch || he.Fingerprint != transport.Fingerprint(s.HostKey) {
		t.Fatalf("error = %#v, want a pinned-mismatch HostKeyError naming the presented key", err)
	}
}

// The server holds ed25519 and ECDSA keys; x/crypto/ssh prefers ECDSA, so
// without HostKeyAlgorithms taken from known_hosts the server would present
// its ECDSA key and a strict dial would see a false "changed" key.
func TestDial_StrictOffersOnlyTheKeyTypesKnownHostsHolds(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	s := transporttest.NewServer(t, transporttest.ServerOptions{ExtraHostKeys: []ssh.Signer{ecSigner}})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := transport.AddKnownHost(kh, s.Host, s.Port, s.HostKey); err != nil {
		t.Fatal(err)
	}
	tg := pinnedTarget(s)
	tg.HostKeyPolicy, tg.PinnedKey, tg.KnownHosts = transport.Strict, "", []string{kh}
	c := dial(t, tg)
	if err := c.Run(t.Context(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRun_NonZeroExitIsExitErrorWithStderrTail(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	c := dial(t, pinnedTarget(s))
	err := c.Run(t.Context(), "echo broken >&2; exit 3", nil, nil, nil)
	var ee *transport.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("error = %v, want *ExitError", err)
	}
	if ee.Status != 3 || ee.Stderr != "broken" {
		t.Fatalf("ExitError = %+v, want status 3 and stderr tail %q", ee, "broken")
	}
}

func TestRun_StdinAndStderrAreWired(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	c := dial(t, pinnedTarget(s))
	var out, errOut bytes.Buffer
	err := c.Run(t.Context(), "tr a-z A-Z; echo warn >&2", strings.NewReader("abc"), &out, &errOut)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.String() != "ABC" || errOut.String() != "warn\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestRun_ContextCancelStopsALongCommand(t *testing.T) {
	stopped := make(chan struct{})
	started := make(chan struct{})
	s := transporttest.NewServer(t, transporttest.ServerOptions{
		Exec: func(ctx context.Context, cmd string, _ io.Reader, _, _ io.Writer) int {
			if cmd == "true" {
				return 0
			}
			close(started)
			<-ctx.Done() // the client's signal or channel close
			close(stopped)
			return 137
		},
	})
	c := dial(t, pinnedTarget(s))
	cause := errors.New("operator pressed ctrl-c")
	ctx, cancel := context.WithCancelCause(t.Context())
	go func() {
		<-started
		cancel(cause)
	}()
	err := c.Run(ctx, "sleep 3600", nil, nil, nil)
	if !errors.Is(err, cause) {
		t.Fatalf("Run error = %v, want the context's cause", err)
	}
	<-stopped // the remote command was told to stop (a hang here fails by test timeout)
	// The connection stays usable after a cancelled command.
	if err := c.Run(t.Context(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

func TestReadFile_SFTPReadsAndReportsMissingFiles(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	c := dial(t, pinnedTarget(s))
	dir := t.TempDir()
	f := filepath.Join(dir, "generation.json")
	if err := os.WriteFile(f, []byte(`{"id":312}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadFile(t.Context(), f)
	if err != nil || string(got) != `{"id":312}` {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	_, err = c.ReadFile(t.Context(), filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile(missing) error = %v, want fs.ErrNotExist", err)
	}
}

func TestUpload_SFTPReplacesTheFileWithItsMode(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	c := dial(t, pinnedTarget(s))
	dir := t.TempDir()
	f := filepath.Join(dir, "restore.sh")
	if err := os.WriteFile(f, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(t.Context(), f, []byte("#!/bin/sh\necho new\n"), 0o750); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	got, err := os.ReadFile(f)
	if err != nil || string(got) != "#!/bin/sh\necho new\n" {
		t.Fatalf("uploaded content = %q, %v", got, err)
	}
	if st, _ := os.Stat(f); st.Mode().Perm() != 0o750 {
		t.Fatalf("mode = %v, want 0750", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file (no temp left)", len(entries))
	}
	// A second read through the same connection reuses the SFTP client.
	if got, err := c.ReadFile(t.Context(), f); err != nil || !bytes.Contains(got, []byte("new")) {
		t.Fatalf("ReadFile after Upload = %q, %v", got, err)
	}
}

func TestDial_ListenerThatNeverSpeaksIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c // accepted, never answered
		}
	}()
	t.Cleanup(func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	tg := transport.Target{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		Auth:           auth(transporttest.NewSigner(t)),
		HostKeyPolicy:  transport.Pinned,
		PinnedKey:      "SHA256:none",
		ConnectTimeout: 300 * time.Millisecond,
	}
	_, err = transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrUnreachable)
}

func TestDial_ClosedPortIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = transport.Dial(t.Context(), transport.Target{
		Host: "127.0.0.1", Port: port,
		HostKeyPolicy: transport.Pinned, PinnedKey: "SHA256:none",
	})
	wantIs(t, err, transport.ErrUnreachable)
}

func TestDial_CancelledContextReturnsItsCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cause := errors.New("run aborted")
	ctx, cancel := context.WithCancelCause(t.Context())
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			// Cancel while the client waits for the server's banner.
			cancel(cause)
			io.Copy(io.Discard, c)
		}
	}()
	_, err = transport.Dial(ctx, transport.Target{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		HostKeyPolicy: transport.Pinned, PinnedKey: "SHA256:none",
		ConnectTimeout: time.Hour,
	})
	if !errors.Is(err, cause) {
		t.Fatalf("Dial error = %v, want the context's cause", err)
	}
}

func TestDial_WrongKeyIsAuthRefused(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	tg := pinnedTarget(s)
	tg.Auth = auth(transporttest.NewSigner(t))
	_, err := transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrAuth)
}

// blockingFiles serves every file as "fine", except /slow whose read
// blocks until the test ends.
type blockingFiles struct {
	reading chan struct{} // closed when /slow is being read
	release chan struct{}
	once    sync.Once
}

func (b *blockingFiles) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	if r.Filepath != "/slow" {
		return strings.NewReader("fine"), nil
	}
	return readerAtFunc(func(p []byte, off int64) (int, error) {
		b.once.Do(func() { close(b.reading) })
		<-b.release
		return 0, io.EOF
	}), nil
}

type readerAtFunc func([]byte, int64) (int, error)

func (f readerAtFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }

func TestReadFile_ContextCancelUnblocksAndTheConnectionStaysUsable(t *testing.T) {
	files := &blockingFiles{reading: make(chan struct{}), release: make(chan struct{})}
	s := transporttest.NewServer(t, transporttest.ServerOptions{SFTPHandlers: &sftp.Handlers{FileGet: files}})
	t.Cleanup(func() { close(files.release) }) // before the server's cleanup
	c := dial(t, pinnedTarget(s))
	cause := errors.New("node time limit")
	ctx, cancel := context.WithCancelCause(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadFile(ctx, "/slow")
		errc <- err
	}()
	<-files.reading // the read is in flight and blocked on the server
	cancel(cause)
	if err := <-errc; !errors.Is(err, cause) {
		t.Fatalf("ReadFile error = %v, want the context's cause", err)
	}
	if got, err := c.ReadFile(t.Context(), "/ok"); err != nil || string(got) != "fine" {
		t.Fatalf("ReadFile after cancel = %q, %v", got, err)
	}
}

func TestConn_ConcurrentCallsShareOneConnection(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	c := dial(t, pinnedTarget(s))
	dir := t.TempDir()
	const n = 16
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			var out bytes.Buffer
			want := strconv.Itoa(i)
			err := c.Run(t.Context(), transport.Quote("echo", want), nil, &out, nil)
			if err == nil && out.String() != want+"\n" {
				err = fmt.Errorf("Run %d: stdout %q", i, out.String())
			}
			errs <- err
		}()
		go func() {
			f := filepath.Join(dir, "f"+strconv.Itoa(i))
			err := c.Upload(t.Context(), f, []byte(f), 0o600)
			if err == nil {
				var got []byte
				got, err = c.ReadFile(t.Context(), f)
				if err == nil && string(got) != f {
					err = fmt.Errorf("ReadFile %s: %q", f, got)
				}
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Keepalives answered by a live peer never close the connection, however
// many intervals a command lasts.
func TestRun_KeepaliveKeepsAHealthyConnectionOpen(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	tg := pinnedTarget(s)
	tg.Keepalive = 100 * time.Millisecond
	c := dial(t, tg)
	if err := c.Run(t.Context(), "sleep 1", nil, nil, nil); err != nil {
		t.Fatalf("Run across 10 keepalive intervals: %v", err)
	}
	if err := c.Run(t.Context(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run after: %v", err)
	}
}

// known_hosts holds an ECDSA key for the host, the server now has only an
// ed25519 one: no common host key type, which is a changed key, not an
// unreachable node.
func TestDial_RecordedKeyTypeGoneIsAChangedHostKey(t *testing.T) {
	s := transporttest.NewServer(t, transporttest.ServerOptions{})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ssh.NewPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := transport.AddKnownHost(kh, s.Host, s.Port, old); err != nil {
		t.Fatal(err)
	}
	tg := pinnedTarget(s)
	tg.HostKeyPolicy, tg.PinnedKey, tg.KnownHosts = transport.AcceptNew, "", []string{kh}
	_, err = transport.Dial(t.Context(), tg)
	wantIs(t, err, transport.ErrHostKey)
	var he *transport.HostKeyError
	if !errors.As(err, &he) || he.Kind != transport.HostKeyChanged || he.Known != kh+":1" {
		t.Fatalf("error = %#v, want a changed-key HostKeyError pointing at %s:1", err, kh)
	}
}
