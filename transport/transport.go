// Package transport talks to ONE node over SSH: run a command, read a file,
// upload a file. It imports nothing of prapush and classifies every failure
// into the error classes below so that callers never match error text.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Conn is an open connection to one node. Every method honours ctx: when
// ctx is done, the call returns promptly with ctx's cause. Conn is safe for
// concurrent use by several goroutines.
type Conn interface {
	// Run runs the shell command line cmd (build it with Quote) on the
	// node as root (through sudo when the target says so), with stdin
	// (may be nil), and copies its output to stdout and stderr (may be
	// nil). A non-zero exit status is returned as *ExitError.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	// ReadFile returns the contents of the file at path, read as root.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Upload writes data to path with mode, as root, atomically where the
	// remote file system allows it.
	Upload(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// Close closes the connection and everything opened on it.
	Close() error
}

// Error classes. Dial and Conn methods return errors that match exactly one
// of these with errors.Is (or *ExitError with errors.As).
var (
	// ErrUnreachable: TCP connect failed, timed out, or the peer never
	// completed the SSH handshake, or the connection died.
	ErrUnreachable = errors.New("unreachable")
	// ErrAuth: the server refused every authentication method offered.
	ErrAuth = errors.New("authentication refused")
	// ErrHostKey: the host key is unknown (strict), changed, or does not
	// match the pinned key. See *HostKeyError for details.
	ErrHostKey = errors.New("host key verification failed")
	// ErrPrivilege: root could not be obtained (sudo asks for a password).
	ErrPrivilege = errors.New("cannot become root")
)

// ExitError is returned by Run when the remote command exits non-zero or is
// killed by a signal.
type ExitError struct {
	Status int    // exit status; -1 when killed by a signal or unknown
	Signal string // signal name when killed by one
	Stderr string // the tail of stderr when the caller did not capture it
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("remote command killed by signal %s", e.Signal)
	}
	msg := fmt.Sprintf("remote command exited with status %d", e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Quote returns args joined as a POSIX shell command line in which every
// argument is one word, whatever bytes it holds.
func Quote(args ...string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(QuoteArg(a))
	}
	return b.String()
}

// QuoteArg quotes one argument for a POSIX shell.
func QuoteArg(a string) string {
	if a != "" && strings.IndexFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%+,", r))
	}) < 0 {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
