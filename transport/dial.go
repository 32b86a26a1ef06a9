package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Hop is one bastion of a ProxyJump chain.
type Hop struct {
	User string // default: the target's user
	Host string
	Port int // default 22
}

func (h Hop) String() string {
	return h.User + "@" + net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
}

// Target says how to reach one node.
type Target struct {
	Name string // node name, for messages
	Host string
	Port int    // default 22
	User string // default "root"
	// Jumps is the ProxyJump chain, first hop first. Each hop's host key
	// is verified against the same known_hosts files and policy (pinned
	// applies to the target only; hops are then checked strictly).
	Jumps []Hop
	// Auth is offered to every hop and to the target. Put all public keys
	// in ONE method (see PublicKeyAuth): x/crypto/ssh tries each method
	// name once, so a second "publickey" method would never be used.
	Auth []ssh.AuthMethod
	// KnownHosts are the known_hosts files; the first one receives the
	// keys recorded by AcceptNew. Missing files count as empty.
	KnownHosts    []string
	HostKeyPolicy HostKeyPolicy // default Strict
	PinnedKey     string        // "SHA256:..." for Pinned
	// Become is "" (the user is root) or "sudo" (commands run through
	// sudo -n; a sudo that asks for a password yields ErrPrivilege).
	Become string
	// BecomePassword, when not nil, is given to sudo (on its stdin, never
	// on a command line) if sudo -n is refused. It is a secret: never
	// logged. A wrong password is ErrPrivilege on the first call.
	BecomePassword []byte
	// ConnectTimeout bounds the TCP connect plus the SSH handshake of each
	// hop (default 10s). Keepalive is the interval of keepalive requests;
	// after 3 unanswered ones the connection is closed and pending calls
	// fail with ErrUnreachable (default 15s; negative disables).
	ConnectTimeout time.Duration
	Keepalive      time.Duration
}

func (t Target) withDefaults() Target {
	if t.Port == 0 {
		t.Port = 22
	}
	if t.User == "" {
		t.User = "root"
	}
	if t.HostKeyPolicy == "" {
		t.HostKeyPolicy = Strict
	}
	if t.ConnectTimeout == 0 {
		t.ConnectTimeout = 10 * time.Second
	}
	if t.Keepalive == 0 {
		t.Keepalive = 15 * time.Second
	}
	t.Jumps = append([]Hop(nil), t.Jumps...)
	for i := range t.Jumps {
		if t.Jumps[i].Port == 0 {
			t.Jumps[i].Port = 22
		}
		if t.Jumps[i].User == "" {
			t.Jumps[i].User = t.User
		}
	}
	return t
}

func (t Target) label() string {
	if t.Name != "" {
		return t.Name
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

func (t Target) validate() error {
	if t.Host == "" {
		return errors.New("no host")
	}
	switch t.HostKeyPolicy {
	case Strict, AcceptNew:
	case Pinned:
		if !strings.HasPrefix(t.PinnedKey, "SHA256:") {
			return fmt.Errorf("pinned host key %q is not a SHA256 fingerprint", t.PinnedKey)
		}
	default:
		return fmt.Errorf("unknown host key policy %q", t.HostKeyPolicy)
	}
	switch t.Become {
	case "", "sudo":
	default:
		return fmt.Errorf("unsupported become %q", t.Become)
	}
	return nil
}

// Dial connects to the node t describes, through its jump hosts, verifying
// every host key. ctx bounds the whole dial, and each hop's connect plus
// handshake is bounded by t.ConnectTimeout. Errors match ErrUnreachable,
// ErrAuth or ErrHostKey (*HostKeyError), or are ctx's cause when ctx ended.
func Dial(ctx context.Context, t Target) (Conn, error) {
	t = t.withDefaults()
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.label(), err)
	}
	db, err := hostKeyDBFor(t.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.label(), err)
	}
	hops := make([]Hop, 0, len(t.Jumps)+1)
	hops = append(hops, t.Jumps...)
	hops = append(hops, Hop{User: t.User, Host: t.Host, Port: t.Port})

	var clients []*ssh.Client
	closeAll := func() {
		for i := len(clients) - 1; i >= 0; i-- {
			clients[i].Close()
		}
	}
	for i, h := range hops {
		policy, pinned := t.HostKeyPolicy, t.PinnedKey
		if i < len(hops)-1 && policy == Pinned {
			policy, pinned = Strict, ""
		}
		var prev *ssh.Client
		if len(clients) > 0 {
			prev = clients[len(clients)-1]
		}
		c, err := dialHop(ctx, prev, h, t, db, policy, pinned, nil)
		if err != nil {
			closeAll()
			what := "dial " + t.label()
			if i < len(hops)-1 {
				what += " via jump " + h.String()
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		clients = append(clients, c)
	}
	return newConn(t, clients), nil
}

// dialHop opens TCP to h (directly, or through prev) and runs the SSH
// handshake, both bounded by ctx and t.ConnectTimeout. A non-nil override
// replaces the client config built from t (FetchHostKeys uses it).
func dialHop(ctx context.Context, prev *ssh.Client, h Hop, t Target, db *hostKeyDB, policy HostKeyPolicy, pinned string, override *ssh.ClientConfig) (*ssh.Client, error) {
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	var refused error
	cfg := override
	if cfg == nil {
		cfg = &ssh.ClientConfig{
			User:            h.User,
			Auth:            t.Auth,
			HostKeyCallback: hostKeyChecker(db, policy, pinned, h.Host, h.Port, &refused),
		}
		if policy != Pinned {
			cfg.HostKeyAlgorithms = db.algorithms(addr)
		}
	}
	dctx, cancel := context.WithTimeoutCause(ctx, t.ConnectTimeout, errConnectTimeout)
	defer cancel()

	var nc net.Conn
	var err error
	if prev == nil {
		var d net.Dialer
		nc, err = d.DialContext(dctx, "tcp", addr)
	} else {
		nc, err = prev.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, classifyDialErr(ctx, dctx, err)
	}
	// The handshake has no context of its own: a deadline covers a direct
	// TCP socket, and closing the socket when dctx ends covers both it and
	// a forwarded channel (which does not support deadlines).
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, classifyDialErr(ctx, dctx, dctx.Err())
	}
	if err != nil {
		nc.Close()
		if refused != nil {
			return nil, refused
		}
		// We offered only the key types known_hosts holds for this host
		// and the server has none of them: its keys were replaced.
		var neg *ssh.AlgorithmNegotiationError
		if override == nil && len(cfg.HostKeyAlgorithms) > 0 && errors.As(err, &neg) && neg.What == "host key" {
			return nil, &HostKeyError{Kind: HostKeyChanged, Host: knownHostAddr(h.Host, h.Port),
				Fingerprint: "(none of the recorded key types: server offers " + strings.Join(neg.RequestedAlgorithms, ",") + ")",
				Known:       describeKnown(db.known(addr))}
		}
		return nil, classifyDialErr(ctx, dctx, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

var errConnectTimeout = errors.New("connect timeout")

// classifyDialErr maps a dial or handshake error to an error class. When the
// caller's ctx ended, its cause wins: the caller decides what a time limit
// means.
func classifyDialErr(ctx, dctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if dctx.Err() != nil {
		return fmt.Errorf("%w: no SSH handshake within the connect timeout: %v", ErrUnreachable, err)
	}
	if isAuthRefused(err) {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	// The cause stays inspectable (FetchHostKeys looks for an algorithm
	// negotiation failure), except a timeout: a caller must not mistake
	// an unreachable node for its own deadline.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// isAuthRefused reports whether a handshake error is the client giving up
// authentication. x/crypto/ssh returns it as an untyped fmt error ("ssh:
// unable to authenticate, attempted methods [...], no supported methods
// remain"), so its text is the only signal; this is the one place that
// matches it. A server closing the connection after too many failures
// (OpenSSH's MaxAuthTries) is reported the same way.
func isAuthRefused(err error) bool {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "ssh: unable to authenticate") ||
		strings.Contains(s, "Too many authentication failures")
}
