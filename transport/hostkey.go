package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says how Dial treats the host key a node presents.
type HostKeyPolicy string

// The host key policies of the inventory.
const (
	// Strict accepts only a key recorded in the known_hosts files.
	Strict HostKeyPolicy = "strict"
	// AcceptNew records the key of an unknown host in the first
	// known_hosts file and continues; a changed key is always refused.
	AcceptNew HostKeyPolicy = "accept-new"
	// Pinned accepts only the key whose SHA256 fingerprint is
	// Target.PinnedKey; known_hosts is not consulted.
	Pinned HostKeyPolicy = "pinned"
)

// HostKeyErrorKind says why a host key was refused.
type HostKeyErrorKind string

// The kinds of host key refusal.
const (
	HostKeyUnknown        HostKeyErrorKind = "unknown"
	HostKeyChanged        HostKeyErrorKind = "changed"
	HostKeyPinnedMismatch HostKeyErrorKind = "pinned-mismatch"
	HostKeyRevoked        HostKeyErrorKind = "revoked"
)

// HostKeyError is returned by Dial when a host key is refused. It matches
// ErrHostKey with errors.Is.
type HostKeyError struct {
	Kind        HostKeyErrorKind
	Host        string // the known_hosts form: host or [host]:port
	Fingerprint string // SHA256 fingerprint of the key the host presented
	Known       string // "file:line" of the recorded key, for changed/revoked
	Want        string // the pinned fingerprint, for pinned-mismatch
}

func (e *HostKeyError) Error() string {
	switch e.Kind {
	case HostKeyUnknown:
		return fmt.Sprintf("host key of %s is unknown (presented %s); enrol it with `prapush hostkeys` or use accept-new", e.Host, e.Fingerprint)
	case HostKeyChanged:
		return fmt.Sprintf("host key of %s has CHANGED (presented %s, recorded at %s): possible man-in-the-middle, refusing", e.Host, e.Fingerprint, e.Known)
	case HostKeyPinnedMismatch:
		return fmt.Sprintf("host key of %s does not match the pinned key (presented %s, pinned %s)", e.Host, e.Fingerprint, e.Want)
	default:
		return fmt.Sprintf("host key of %s is %s (presented %s, %s)", e.Host, e.Kind, e.Fingerprint, e.Known)
	}
}

// Is makes errors.Is(err, ErrHostKey) true.
func (e *HostKeyError) Is(target error) bool { return target == ErrHostKey }

// Fingerprint returns the SHA256 fingerprint of k as OpenSSH prints it
// ("SHA256:...").
func Fingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// knownHostAddr is the known_hosts form of host:port ([host]:port when the
// port is not 22).
func knownHostAddr(host string, port int) string {
	return knownhosts.Normalize(net.JoinHostPort(host, strconv.Itoa(port)))
}

// AddKnownHost appends a line for host:port and key to the known_hosts file,
// creating the file (0600) and its directory (0700) when missing.
func AddKnownHost(file, host string, port int, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("add known host %s: %w", host, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("add known host %s: %w", host, err)
	}
	line := knownhosts.Line([]string{net.JoinHostPort(host, strconv.Itoa(port))}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("add known host %s: %w", host, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("add known host %s: %w", host, err)
	}
	return nil
}

// hostKeyDB is the known_hosts files of a target, loaded once per Dial.
type hostKeyDB struct {
	files    []string // as given; files[0] receives accept-new entries
	callback ssh.HostKeyCallback
}

// hostKeyDBs caches the parsed known_hosts of recent dials: a run dials
// every node with the same files, and each connection keeps its database
// for re-keying, so parsing per dial cost N parses and N copies in memory
// (100 nodes × 100 entries). An entry is valid while every file keeps its
// size and modification time, so a key recorded by accept-new or by
// `hostkeys` is seen by the next dial.
var hostKeyDBs struct {
	sync.Mutex
	m map[string]*hostKeyDB
}

// maxHostKeyDBs bounds the cache; one run uses one or two sets of files.
const maxHostKeyDBs = 8

// hostKeyDBFor returns the database of files, from the cache when the
// files did not change since it was loaded.
func hostKeyDBFor(files []string) (*hostKeyDB, error) {
	var key strings.Builder
	for _, f := range files {
		fmt.Fprintf(&key, "%q", f)
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&key, ":%d:%d:%d;", st.Size(), st.ModTime().UnixNano(), st.Mode())
		} else {
			key.WriteString(":-;")
		}
	}
	hostKeyDBs.Lock()
	defer hostKeyDBs.Unlock()
	if db, ok := hostKeyDBs.m[key.String()]; ok {
		return db, nil
	}
	db, err := loadHostKeyDB(files)
	if err != nil {
		return nil, err
	}
	if hostKeyDBs.m == nil || len(hostKeyDBs.m) >= maxHostKeyDBs {
		hostKeyDBs.m = map[string]*hostKeyDB{}
	}
	hostKeyDBs.m[key.String()] = db
	return db, nil
}

// loadHostKeyDB reads the existing files among files; missing files are
// treated as empty, because a fresh workstation has no known_hosts yet.
func loadHostKeyDB(files []string) (*hostKeyDB, error) {
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
	}
	db := &hostKeyDB{files: files}
	if len(existing) > 0 {
		cb, err := knownhosts.New(existing...)
		if err != nil {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
		db.callback = cb
	}
	return db, nil
}

// dummyAddr stands for the remote address when we only query the database.
var dummyAddr = &net.TCPAddr{IP: net.IPv4(0, 0, 0, 0), Port: 0}

// probeKey is a key no host holds: checking it yields the recorded keys of a
// host in KeyError.Want.
var probeKey = func() ssh.PublicKey {
	// A fixed, valid ed25519 public key (all-zero bytes are a valid point
	// encoding for parsing purposes); it never equals a real host key.
	k, err := ssh.ParsePublicKey(ssh.Marshal(struct {
		Name string
		Key  []byte
	}{ssh.KeyAlgoED25519, make([]byte, 32)}))
	if err != nil {
		panic(err)
	}
	return k
}()

// known returns the recorded keys for host (in its "host:port" form).
func (db *hostKeyDB) known(hostport string) []knownhosts.KnownKey {
	if db.callback == nil {
		return nil
	}
	err := db.callback(hostport, dummyAddr, probeKey)
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// algorithms returns the host key algorithms to offer for hostport: those
// of the key types recorded for it, so that the server presents a key we
// can check instead of one the file lacks (which Go would report as a
// mismatch). nil means "no preference" (unknown host).
func (db *hostKeyDB) algorithms(hostport string) []string {
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, k := range db.known(hostport) {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// hostKeyChecker builds the HostKeyCallback for one hop. It records the
// refusal in *refused so that the dialler can return it even if the SSH
// library flattens the error.
func hostKeyChecker(db *hostKeyDB, policy HostKeyPolicy, pinned, host string, port int, refused *error) ssh.HostKeyCallback {
	addr := knownHostAddr(host, port)
	hostport := net.JoinHostPort(host, strconv.Itoa(port))
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := checkHostKey(db, policy, pinned, addr, hostport, port, host, key)
		if err != nil {
			*refused = err
		}
		return err
	}
}

func checkHostKey(db *hostKeyDB, policy HostKeyPolicy, pinned, addr, hostport string, port int, host string, key ssh.PublicKey) error {
	fp := Fingerprint(key)
	if policy == Pinned {
		if pinned == "" || fp != pinned {
			return &HostKeyError{Kind: HostKeyPinnedMismatch, Host: addr, Fingerprint: fp, Want: pinned}
		}
		return nil
	}
	var err error = &knownhosts.KeyError{}
	if db.callback != nil {
		err = db.callback(hostport, dummyAddr, key)
	}
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &HostKeyError{Kind: HostKeyRevoked, Host: addr, Fingerprint: fp, Known: re.Revoked.String()}
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return &HostKeyError{Kind: HostKeyChanged, Host: addr, Fingerprint: fp, Known: describeKnown(ke.Want)}
	case errors.As(err, &ke):
		if policy == AcceptNew && len(db.files) > 0 {
			if aerr := AddKnownHost(db.files[0], host, port, key); aerr != nil {
				return aerr
			}
			return nil
		}
		return &HostKeyError{Kind: HostKeyUnknown, Host: addr, Fingerprint: fp}
	default:
		return fmt.Errorf("check host key of %s: %w", addr, err)
	}
}

// describeKnown lists the "file:line" of recorded entries.
func describeKnown(keys []knownhosts.KnownKey) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k.Filename, k.Line))
	}
	return strings.Join(parts, ", ")
}
