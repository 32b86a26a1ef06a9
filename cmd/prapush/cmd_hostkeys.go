package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/transport"
)

// hostKeyState is what the known_hosts files say of a presented key.
type hostKeyState string

const (
	keyKnown   hostKeyState = "known"
	keyNew     hostKeyState = "new"     // the host has no recorded key
	keyNewType hostKeyState = "NEWTYPE" // the host is known, but by other key types
	keyChanged hostKeyState = "CHANGED"
	keyRevoked hostKeyState = "REVOKED"
	// keyUnverifiable: the known_hosts files cannot be read or parsed.
	keyUnverifiable hostKeyState = "UNVERIFIABLE"
)

type fetchedKey struct {
	node  string
	host  string // host as recorded (knownhosts.Normalize of host:port)
	file  string // known_hosts file it goes to
	key   ssh.PublicKey
	state hostKeyState
	err   error
}

func (a *app) cmdHostkeys(ctx context.Context, args []string) error {
	yes := false
	rest, err := a.parseCommandFlags("hostkeys", args, func(fs flagSet) {
		fs.BoolVar(&yes, "yes", false, "")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("hostkeys: unexpected argument %q", rest[0])
	}
	_, nodes, err := a.loadInventory()
	if err != nil {
		return err
	}
	interactive := isTerminal(a.env.Stdin)
	if !yes && !interactive {
		return usageErr("hostkeys: standard input is not a terminal: pass --yes to record the keys")
	}
	au, err := a.newAuthenticator(nodes)
	if err != nil {
		return err
	}
	defer au.Close()

	results := make([][]fetchedKey, len(nodes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(a.g.parallel, len(nodes), 1))
	if a.g.parallel > 0 {
		sem = make(chan struct{}, a.g.parallel)
	}
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t, err := a.target(n)
			if err != nil {
				results[i] = []fetchedKey{{node: n.Name, err: err}}
				return
			}
			t.Auth = au.methods(a.identityFiles(n))
			keys, err := transport.FetchHostKeys(ctx, t)
			if err != nil {
				results[i] = []fetchedKey{{node: n.Name, err: err}}
				return
			}
			host := knownhosts.Normalize(net.JoinHostPort(t.Host, strconv.Itoa(t.Port)))
			for _, k := range keys {
				results[i] = append(results[i], fetchedKey{node: n.Name, host: host, file: t.KnownHosts[0], key: k, state: knownState(t.KnownHosts, t.Host, t.Port, k)})
			}
		}()
	}
	wg.Wait()

	// A host with any changed or revoked key gets nothing recorded: the
	// operator must look at it first.
	suspect := map[string]bool{}
	for _, rs := range results {
		for _, r := range rs {
			if r.state == keyChanged || r.state == keyRevoked || r.state == keyUnverifiable {
				suspect[r.host] = true
			}
		}
	}
	var toRecord, newTypes []fetchedKey
	var codes []int
	for _, rs := range results {
		for _, r := range rs {
			if r.err != nil {
				fmt.Fprintf(a.env.Stdout, "%-12s  %s  %s\n", r.node, "error", report.SanitizeText(r.err.Error()))
				codes = append(codes, exitUnreachable)
				continue
			}
			fmt.Fprintf(a.env.Stdout, "%-12s  %-7s  %s  %s  %s\n", r.node, r.state, r.host, r.key.Type(), ssh.FingerprintSHA256(r.key))
			switch {
			case suspect[r.host] && (r.state == keyNew || r.state == keyNewType):
				// Not recorded: another key of this host changed.
			case r.state == keyNew:
				toRecord = append(toRecord, r)
			case r.state == keyNewType:
				// A server that suddenly offers only a key type we never
				// saw is what a man in the middle would do: never record
				// it without a person's explicit yes.
				newTypes = append(newTypes, r)
			case r.state == keyRevoked:
				fmt.Fprintf(a.env.Stderr, "prapush: error: %s: the host key is marked @revoked in %s\n", r.node, r.file)
				codes = append(codes, exitUnreachable)
			case r.state == keyUnverifiable:
				fmt.Fprintf(a.env.Stderr, "prapush: error: %s: the known_hosts files cannot be read or parsed; nothing recorded\n", r.node)
				codes = append(codes, exitUnreachable)
			case r.state == keyChanged:
				fmt.Fprintf(a.env.Stderr, "prapush: error: %s: the host key differs from the one in %s; if the server was reinstalled, remove the old entry (ssh-keygen -R %s -f %s) and run hostkeys again\n",
					r.node, r.file, shellWord(r.host), shellWord(r.file))
				codes = append(codes, exitUnreachable)
			}
		}
	}
	if len(newTypes) > 0 {
		if !isTerminal(a.env.Stdin) {
			for _, r := range newTypes {
				fmt.Fprintf(a.env.Stderr, "prapush: error: %s: known by other key types, now offers a %s key: not recorded without a person's confirmation (run hostkeys on a terminal)\n", r.node, r.key.Type())
			}
			codes = append(codes, exitUnreachable)
		} else {
			fmt.Fprintf(a.env.Stderr, "%d host(s) already known by OTHER key types now offer the NEWTYPE key(s) above; check the fingerprints on the servers. Record them? [y/N] ", len(newTypes))
			line, _ := bufio.NewReader(a.env.Stdin).ReadString('\n')
			if ans := strings.ToLower(strings.TrimSpace(line)); ans == "y" || ans == "yes" {
				toRecord = append(toRecord, newTypes...)
			} else {
				codes = append(codes, exitUnreachable)
			}
		}
	}
	if len(toRecord) > 0 {
		if !yes {
			fmt.Fprintf(a.env.Stderr, "Record %d new key(s) in known_hosts? [y/N] ", len(toRecord))
			line, _ := bufio.NewReader(a.env.Stdin).ReadString('\n')
			if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
				fmt.Fprintln(a.env.Stderr, "nothing recorded")
				return &exitError{code: exitFailed}
			}
		}
		for _, r := range toRecord {
			host, port := splitNormalized(r.host)
			if err := transport.AddKnownHost(r.file, host, port, r.key); err != nil {
				return err
			}
		}
		fmt.Fprintf(a.env.Stdout, "recorded %d key(s)\n", len(toRecord))
	} else if len(codes) == 0 {
		fmt.Fprintln(a.env.Stdout, "every host key is already known")
	}
	if code := worstExit(codes...); code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// knownState tells whether key is known for host:port in files.
func knownState(files []string, host string, port int, key ssh.PublicKey) hostKeyState {
	var existing []string
	for _, f := range files {
		if fileExists(f) {
			existing = append(existing, f)
		}
	}
	if len(existing) == 0 {
		return keyNew
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return keyUnverifiable
	}
	addr := &net.TCPAddr{IP: net.ParseIP(host), Port: port}
	err = cb(net.JoinHostPort(host, strconv.Itoa(port)), addr, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return keyKnown
	case errors.As(err, &re):
		return keyRevoked
	case errors.As(err, &ke) && len(ke.Want) > 0:
		// Another key of the SAME type is recorded: changed. Only other
		// types recorded: the host is known, this type is new to us.
		for _, w := range ke.Want {
			if w.Key.Type() == key.Type() {
				return keyChanged
			}
		}
		return keyNewType
	case errors.As(err, &ke):
		return keyNew
	}
	return keyUnverifiable
}

func splitNormalized(h string) (string, int) {
	if strings.HasPrefix(h, "[") {
		host, port, err := net.SplitHostPort(h)
		if err == nil {
			p, _ := strconv.Atoi(port)
			return host, p
		}
	}
	return h, 22
}

func shellWord(s string) string { return transport.QuoteArg(s) }
