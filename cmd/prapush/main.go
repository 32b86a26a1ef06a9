// Command prapush runs BlueMind's disaster-recovery procedure (PRA) on every
// node of an architecture over SSH. See README.md and `prapush --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(Main()) }

// Main runs prapush with the process's arguments, streams and environment
// and returns the exit code. It is the only place that reads them.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
	}
	err := run(ctx, os.Args[1:], env)
	return exitCode(env.Stderr, err)
}

// Env is everything of the process that commands may use. Tests build one
// with buffers and a map.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// exitError carries the exit code the spec assigns to an outcome.
type exitError struct {
	code int
	err  error // nil when the outcome was already reported
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// Exit codes of the spec.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitTimeout     = 4
	exitBusy        = 5
	exitDetached    = 6
	exitInterrupted = 130
)

// exitPriority is the spec's order when several codes apply: 2 > 3 > 5 > 4 >
// 1 > 130 > 6.
var exitPriority = []int{exitUsage, exitUnreachable, exitBusy, exitTimeout, exitFailed, exitInterrupted, exitDetached}

// worstExit returns the code that wins among codes per exitPriority.
func worstExit(codes ...int) int {
	for _, p := range exitPriority {
		for _, c := range codes {
			if c == p {
				return p
			}
		}
	}
	return exitOK
}

// usageErr marks err as a usage or inventory error (exit 2).
func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// exitCode is the one switch from an error to the process exit code; it
// prints the error, with a hint where one helps.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "prapush: error: %v\n", ee.err)
			if ee.code == exitUsage {
				fmt.Fprintln(stderr, "prapush: hint: run 'prapush --help' for usage")
			}
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "prapush: interrupted")
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "prapush: error: %v\n", err)
	return exitFailed
}
