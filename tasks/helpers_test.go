package tasks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// fixture312 is the generation file of the shared fixture: core
// 192.168.10.11 (bm-master) and data server 192.168.10.12.
func fixture312(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/generation-312.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gen313 is a later generation whose last part never finished.
const gen313 = `{"id":313,"protectionTime":1647378002417,"blueMind":{"major":"4","minor":"1","release":"63476","displayName":"4.8.2"},"withWarnings":false,"withErrors":false,"parts":[{"id":2050,"generationId":313,"begin":1647378003617,"end":1647378007517,"size":2,"tag":"bm/conf","server":"bm-master","withWarnings":false,"withErrors":false,"valid":"VALID","datatype":"configuration"},{"id":2051,"generationId":313,"begin":1647378007717,"end":null,"size":0,"tag":"bm/es","server":"bm-master","withWarnings":false,"withErrors":false,"valid":"UNKNOWN","datatype":"es"}]}`

var fixtureParts = []string{
	"192.168.10.11/bm/conf/2041", "192.168.10.11/bm/core/2042", "192.168.10.11/bm/pgsql/2043",
	"192.168.10.11/bm/es/2044", "192.168.10.11/filehosting/data/2045", "192.168.10.11/mail/imap/2046",
	"192.168.10.12/bm/conf/2047", "192.168.10.12/bm/pgsql-data/2048", "192.168.10.12/mail/imap/2049",
	"192.168.10.11/bm/conf/2050",
}

func writeFile(t testing.TB, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// makeStore builds a backup store holding generations 312 and 313.
func makeStore(t testing.TB, dir string) string {
	t.Helper()
	store := filepath.Join(dir, "store")
	writeFile(t, filepath.Join(store, "generation-312.json"), string(fixture312(t)), 0o644)
	writeFile(t, filepath.Join(store, "generation-313.json"), gen313, 0o644)
	for _, p := range fixtureParts {
		if err := os.MkdirAll(filepath.Join(store, "dp_spool/rsync", p, "var"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(store, "temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	return store
}

// fakeNode is the local tree of one fake BlueMind node: /etc, a Python
// stand-in and a restore script with the bm4-es markers.
type fakeNode struct {
	Etc, Python, Script, Spool, Runs string
}

func makeNode(t testing.TB, dir string) fakeNode {
	t.Helper()
	n := fakeNode{
		Etc:    filepath.Join(dir, "etc"),
		Python: filepath.Join(dir, "usr/bin/python"),
		Script: filepath.Join(dir, "usr/share/bm-node/bm-pra-restore.py"),
		Spool:  filepath.Join(dir, "root"),
		Runs:   filepath.Join(dir, "runs"),
	}
	writeFile(t, filepath.Join(n.Etc, "os-release"), "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"18.04\"\n", 0o644)
	writeFile(t, filepath.Join(n.Etc, "bm/bm.ini"), "[global]\nexternal-url = mail.acme.example\nexternal-protocol = https\nhost = 192.168.10.11\npassword = sEcReTdB\n", 0o644)
	writeFile(t, filepath.Join(n.Etc, "bm/bm-core.tok"), "tOkEnSeCrEt\n", 0o440)
	writeFile(t, filepath.Join(n.Etc, "bm/server.uid"), "bm-master\n", 0o644)
	if err := os.MkdirAll(filepath.Join(n.Etc, "postgresql/14/main"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, n.Python, "#!/bin/sh\necho 2\n", 0o755)
	writeFile(t, n.Script, "#!/usr/bin/python\n# dt_string = now.strftime(...)\nexecCmd(log, ['systemctl', 'restart', 'bm-elasticsearch'], None, 'Restarting Elasticsearch')\nexecCmd(log, cmd, None, 'Waiting for ES cluster is up')\n# /etc/postgresql/14/main\n# configuration/14/\n", 0o755)
	if err := os.MkdirAll(filepath.Join(n.Spool, "var/lib/postgresql"), 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n fakeNode) roots(store, ips string) scriptRoots {
	return scriptRoots{Store: store, Etc: n.Etc, Runs: n.Runs, Spool: n.Spool, IPs: ips}
}

func testNode(name, ip string, core bool, tags ...string) inventory.Node {
	return inventory.Node{Name: name, IP: netip.MustParseAddr(ip), Address: ip, Core: core, Tags: tags}
}

func testArch() inventory.Architecture {
	return inventory.Architecture{Name: "acme", ExternalURL: "mail.acme.example", BlueMindVersion: "4.8.2", OS: "ubuntu 18.04",
		RestoreScript: inventory.DefaultRestoreScript, Python: inventory.DefaultPython}
}

// runLocal runs a script with sh, as a fake node would.
func runLocal(t testing.TB, shell, script string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(shell, "-c", script)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", shell, err, errb.String())
	}
	return out.Bytes()
}

// localConn is a transport.Conn that runs commands with sh on this machine,
// after applying rewrites (how a test gives each fake node its own roots).
type localConn struct {
	rewrite  *strings.Replacer
	commands *[]string // records every command when not nil
	env      []string  // added to the environment of every command
	closed   bool
}

func (c *localConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if c.rewrite != nil {
		cmd = c.rewrite.Replace(cmd)
	}
	if c.commands != nil {
		*c.commands = append(*c.commands, cmd)
	}
	x := exec.CommandContext(ctx, "sh", "-c", cmd)
	x.Stdin, x.Stdout, x.Stderr = stdin, stdout, stderr
	// A killed sh leaves its children holding the output pipes: do not
	// wait for them (an SSH session drops the channel the same way).
	x.WaitDelay = 100 * time.Millisecond
	if c.env != nil {
		x.Env = append(os.Environ(), c.env...)
	}
	err := x.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &transport.ExitError{Status: ee.ExitCode()}
	}
	return err
}

func (c *localConn) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return nil, errors.New("not implemented")
}

func (c *localConn) Upload(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	return errors.New("not implemented")
}

func (c *localConn) Close() error { c.closed = true; return nil }
