package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

const usageText = `prapush — BlueMind disaster recovery (PRA) on every node, over SSH

Usage:
  prapush [global flags] <command> [flags]

Commands:
  inventory check     parse and validate the inventory, print the resolved nodes (no network)
  hostkeys [--yes]    fetch every node's host key, show the fingerprints, record them in the
                      known_hosts file after confirmation (--yes: without asking)
  verify              check every prerequisite of the procedure on every node; exit 0 = ready
  generations         generations seen by each node, and which are restorable on ALL nodes
  exec -- CMD...      run CMD on the selected nodes, output prefixed per node
  report render FILE.json --format html|md|junit|json
                      re-render a saved report to standard output
  version             print the version
  restore [--generation ID|latest] [--dry-run] [--yes] [--detach] [--resume RUN-ID]
          [--step-timeout D] [--allow-partial] [--no-post] [--no-resync]
                      verify, plan, and restore one generation on every node (stages in order),
                      then the DataProtect re-sync and the post-operations on the core node
  attach [RUN-ID]     reconnect to a run, replay what was missed, follow it to the end
  status [RUN-ID]     one-shot view of a run (remote state of every node)
  post [RUN-ID] [--no-resync] [--no-post]
                      (re)run the automated post-operations on the core node

Global flags (before or after the command):
  -i, --inventory FILE        inventory (default ./inventory.toml, env PRAPUSH_INVENTORY)
  -l, --limit LIST            node names, globs or tag:<tag>, comma separated
  -p, --parallel N            nodes contacted at once (default: all)
      --report-dir DIR        report directory (default prapush-reports/<run-id>/, created 0700)
  -o, --output text|json      output format (default text)
      --color auto|always|never   colour (default auto; NO_COLOR honoured)
  -v, --verbose               more detail
      --accept-new-host-keys  trust unknown host keys on first use, recorded in known_hosts
                              (a changed key is still refused)
      --timeout D             limit for the whole run (e.g. 30m; default none)
      --strict                warnings fail too
      --ask-become-pass       ask the sudo password once, up front (terminal only); it is tried on one
                              node before the others, so a wrong one cannot lock the account everywhere
  -h, --help                  this help

Exit codes:
  0    success (every node passed; warnings allowed unless --strict)
  1    a check failed on at least one node (the report is written)
  2    usage or inventory error: nothing was contacted
  3    a node unreachable, authentication refused, or host key unknown/changed
  4    a node exceeded a time limit
  5    a restore or a DataProtect backup is already running on a node (nothing touched)
  6    detached on request
  130  interrupted by the operator
  When several apply: 2 > 3 > 5 > 4 > 1 > 130 > 6.

Reports: every command that contacts nodes writes report.json, junit.xml, report.md, report.html
and logs/ into the report directory, even when nodes fail; the path is printed last.
`

// globals are the flags every command accepts.
type globals struct {
	inventory     string
	limit         string
	parallel      int
	reportDir     string
	output        string
	color         string
	verbose       bool
	acceptNewKeys bool
	timeout       time.Duration
	strict        bool
	askBecomePass bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.inventory, "i", g.inventory, "")
	fs.StringVar(&g.inventory, "inventory", g.inventory, "")
	fs.StringVar(&g.limit, "l", g.limit, "")
	fs.StringVar(&g.limit, "limit", g.limit, "")
	fs.IntVar(&g.parallel, "p", g.parallel, "")
	fs.IntVar(&g.parallel, "parallel", g.parallel, "")
	fs.StringVar(&g.reportDir, "report-dir", g.reportDir, "")
	fs.StringVar(&g.output, "o", g.output, "")
	fs.StringVar(&g.output, "output", g.output, "")
	fs.StringVar(&g.color, "color", g.color, "")
	fs.BoolVar(&g.verbose, "v", g.verbose, "")
	fs.BoolVar(&g.verbose, "verbose", g.verbose, "")
	fs.BoolVar(&g.acceptNewKeys, "accept-new-host-keys", g.acceptNewKeys, "")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "")
	fs.BoolVar(&g.strict, "strict", g.strict, "")
	fs.BoolVar(&g.askBecomePass, "ask-become-pass", g.askBecomePass, "")
}

func (g *globals) validate() error {
	switch g.output {
	case "text", "json":
	default:
		return usageErr("--output must be text or json, not %q", g.output)
	}
	switch g.color {
	case "auto", "always", "never":
	default:
		return usageErr("--color must be auto, always or never, not %q", g.color)
	}
	if g.parallel < 0 {
		return usageErr("--parallel must be >= 0, not %d", g.parallel)
	}
	if g.timeout < 0 {
		return usageErr("--timeout must be positive")
	}
	return nil
}

// newFlagSet returns a flag set that reports errors as usage errors instead
// of printing and exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// run parses args and runs one command.
func run(ctx context.Context, args []string, env *Env) error {
	g := &globals{output: "text", color: "auto", inventory: env.Getenv("PRAPUSH_INVENTORY")}
	if g.inventory == "" {
		g.inventory = "inventory.toml"
	}
	fs := newFlagSet("prapush")
	g.register(fs)
	help := fs.Bool("h", false, "")
	fs.BoolVar(help, "help", false, "")
	if err := fs.Parse(args); err != nil {
		return usageErr("%v", err)
	}
	if *help {
		fmt.Fprint(env.Stdout, usageText)
		return nil
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(env.Stderr, usageText)
		return &exitError{code: exitUsage}
	}
	cmd, rest := rest[0], rest[1:]
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, g.timeout, errRunTimeout)
		defer cancel()
	}
	a := &app{g: g, env: env}
	switch cmd {
	case "help":
		fmt.Fprint(env.Stdout, usageText)
		return nil
	case "version":
		fmt.Fprintf(env.Stdout, "prapush %s\n", version)
		return nil
	case "inventory":
		return a.cmdInventory(ctx, rest)
	case "hostkeys":
		return a.cmdHostkeys(ctx, rest)
	case "verify":
		return a.cmdVerify(ctx, rest)
	case "generations":
		return a.cmdGenerations(ctx, rest)
	case "exec":
		return a.cmdExec(ctx, rest)
	case "report":
		return a.cmdReport(ctx, rest)
	case "restore":
		return a.cmdRestore(ctx, rest)
	case "attach":
		return a.cmdAttach(ctx, rest)
	case "status":
		return a.cmdStatus(ctx, rest)
	case "post":
		return a.cmdPost(ctx, rest)
	}
	return usageErr("unknown command %q", cmd)
}

// parseCommandFlags parses a command's flags together with the global ones,
// so that global flags may follow the command name.
func (a *app) parseCommandFlags(name string, args []string, define func(fs flagSet)) ([]string, error) {
	fs := newFlagSet(name)
	a.g.register(fs)
	help := fs.Bool("h", false, "")
	fs.BoolVar(help, "help", false, "")
	if define != nil {
		define(fs)
	}
	// Flags and positional arguments may be mixed ("render FILE --format md");
	// everything after "--" is positional.
	var positional, tail []string
	for i, arg := range args {
		if arg == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageErr("%s: %v", name, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	positional = append(positional, tail...)
	if *help {
		fmt.Fprint(a.env.Stdout, usageText)
		return nil, errHelpShown
	}
	if err := a.g.validate(); err != nil {
		return nil, err
	}
	return positional, nil
}

var errHelpShown = &exitError{code: exitOK}

var errRunTimeout = fmt.Errorf("the whole run exceeded --timeout")

// flagSet is the flag set a command defines its own flags on.
type flagSet = *flag.FlagSet

// app is one invocation: the parsed globals and the process environment.
type app struct {
	g   *globals
	env *Env
}
