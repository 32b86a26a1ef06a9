// Package labtest gives end-to-end tests a running prapush lab (lab/lab.sh:
// three container nodes on their own network) and the prapush binary.
//
// A test binary starts the lab once, on the first Require, and every test
// that needs a given backup store calls Reset first: Reset regenerates the
// store and recreates only the nodes that an earlier test altered, so tests
// stay independent without paying for a full restart each. Tests using the
// lab must not run in parallel with each other.
//
// Environment: LAB_KEEP=1 leaves the lab running after the tests (handy to
// look at a failure with lab/lab.sh ssh NODE).
package labtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prapush/prapush/internal/testenv"
)

// Nodes are the lab's node names, in inventory order (core first).
var Nodes = []string{"core", "mail", "files"}

// Lab is the running lab. Its methods fail the calling test on error.
type Lab struct {
	repo  string // repository root
	dir   string // lab/
	state string // lab/.state

	mu      sync.Mutex
	dirty   map[string]bool // nodes to recreate at the next Reset
	started bool            // this process started the lab (Main brings it down)
}

var (
	once    sync.Once
	shared  *Lab
	initErr error
	skipMsg string

	buildOnce sync.Once
	binPath   string
	binDir    string
	buildErr  error
)

// Main runs the tests of m and then stops the lab if this process started
// it (unless LAB_KEEP=1). Call it from TestMain: os.Exit(labtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil && shared.started && os.Getenv("LAB_KEEP") != "1" {
		if out, err := shared.sh("down"); err != nil {
			fmt.Fprintf(os.Stderr, "labtest: lab down: %v\n%s", err, out)
		}
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// Require returns the lab, started on first use with the ok preset. It skips
// the test (fails it when PRAPUSH_TEST_DISALLOW_SKIP=1) when Docker or
// docker-compose is missing; missing images are built (debootstrap, cached).
func Require(t testing.TB) *Lab {
	t.Helper()
	once.Do(func() { shared, skipMsg, initErr = start() })
	if skipMsg != "" {
		testenv.SkipOrFail(t, skipMsg)
	}
	if initErr != nil {
		t.Fatalf("start the lab: %v", initErr)
	}
	return shared
}

func start() (*Lab, string, error) {
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, tool + " not installed: the lab needs it", nil
		}
	}
	err := exec.Command("docker", "info").Run()
	if err != nil {
		return nil, "docker engine not reachable: " + err.Error(), nil
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(filepath.Dir(file))
	state := filepath.Join(dir, ".state")
	if v := os.Getenv("LAB_STATE"); v != "" {
		// lab.sh honours LAB_STATE too: both must look at the same state.
		if state, err = filepath.Abs(v); err != nil {
			return nil, "", fmt.Errorf("resolve LAB_STATE: %w", err)
		}
	}
	l := &Lab{repo: filepath.Dir(dir), dir: dir, state: state, dirty: map[string]bool{}}
	for _, suite := range []string{"bullseye", "bookworm"} {
		if exec.Command("docker", "image", "inspect", "prapush-lab-node:"+suite).Run() == nil {
			continue
		}
		if _, err := exec.LookPath("debootstrap"); err != nil {
			return nil, "lab image prapush-lab-node:" + suite + " missing and debootstrap not installed (run lab/lab.sh images)", nil
		}
		if out, err := l.sh("images", suite); err != nil {
			return nil, "", fmt.Errorf("build image %s: %w\n%s", suite, err, out)
		}
	}
	if out, err := l.sh("up", "ok"); err != nil {
		return nil, "", fmt.Errorf("lab up: %w\n%s", err, out)
	}
	l.started = true
	return l, "", nil
}

// sh runs lab/lab.sh with args and returns its combined output.
func (l *Lab) sh(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(l.dir, "lab.sh"), args...)
	cmd.Dir = l.repo
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *Lab) mustSh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := l.sh(args...)
	if err != nil {
		t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (l *Lab) markDirty(node string) {
	l.mu.Lock()
	l.dirty[node] = true
	l.mu.Unlock()
}

func checkNode(t testing.TB, node string) {
	t.Helper()
	if !slices.Contains(Nodes, node) {
		t.Fatalf("unknown lab node %q", node)
	}
}

// Reset regenerates the backup store with preset (see labgen.Presets) and
// recreates the nodes altered since the last Reset, so that the test starts
// from a clean lab. The stale-view preset also gives the mail node its own
// view of the store.
func (l *Lab) Reset(t testing.TB, preset string) {
	t.Helper()
	l.mu.Lock()
	var nodes []string
	for _, n := range Nodes {
		if l.dirty[n] {
			nodes = append(nodes, n)
		}
	}
	l.dirty = map[string]bool{}
	l.mu.Unlock()
	if len(nodes) == 0 {
		nodes = []string{"none"}
	}
	l.mustSh(t, append([]string{"reset", preset}, nodes...)...)
	if preset == "stale-view" {
		l.markDirty("mail")
	}
}

// Exec runs args in node (docker exec, as root) and returns its stdout; the
// error carries stderr.
func (l *Lab) Exec(node string, args ...string) (string, error) {
	if !slices.Contains(Nodes, node) {
		return "", fmt.Errorf("unknown lab node %q", node)
	}
	cmd := exec.Command(filepath.Join(l.dir, "lab.sh"), append([]string{"exec", node}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("exec %s on %s: %w: %s", strings.Join(args, " "), node, err, stderr.String())
	}
	return stdout.String(), nil
}

// Change runs the shell script in node as root and marks the node for
// recreation at the next Reset: for faults made inside a node (a file
// removed, a process started). The script must not keep docker exec's
// output open: background processes redirect their output.
func (l *Lab) Change(t testing.TB, node, script string) string {
	t.Helper()
	checkNode(t, node)
	l.markDirty(node)
	out, err := l.Exec(node, "sh", "-c", script)
	if err != nil {
		t.Fatalf("change %s: %v\n%s", node, err, out)
	}
	return out
}

// SetKnob sets key=value in the node's /etc/fake-bm-pra.conf.
func (l *Lab) SetKnob(t testing.TB, node, key, value string) {
	t.Helper()
	checkNode(t, node)
	l.markDirty(node)
	l.mustSh(t, "knob", node, key+"="+value)
}

// Stop stops the node's container (its address stops answering).
func (l *Lab) Stop(t testing.TB, node string) { l.do(t, node, "stop") }

// Start starts a stopped node and waits for its sshd.
func (l *Lab) Start(t testing.TB, node string) { l.do(t, node, "start") }

// Disconnect detaches the node from the lab network.
func (l *Lab) Disconnect(t testing.TB, node string) { l.do(t, node, "disconnect") }

// Connect reattaches the node to the lab network at its address.
func (l *Lab) Connect(t testing.TB, node string) { l.do(t, node, "connect") }

// StoreReadOnly recreates the node with the backup store mounted read-only.
func (l *Lab) StoreReadOnly(t testing.TB, node string) { l.do(t, node, "store-ro") }

// StoreNotADirectory recreates the node with a plain file mounted where
// its backup store should be.
func (l *Lab) StoreNotADirectory(t testing.TB, node string) { l.do(t, node, "store-file") }

// ChangeHostKey recreates the node with a new SSH host key; known_hosts
// keeps the old one.
func (l *Lab) ChangeHostKey(t testing.TB, node string) { l.do(t, node, "hostkey") }

// StartBackup starts, on the node, an rsync into the store that lasts
// minutes, like a DataProtect backup in progress.
func (l *Lab) StartBackup(t testing.TB, node string) { l.do(t, node, "backup-start") }

// OwnView gives the node its own view of the store: a copy of the current
// store without its newest generation file.
func (l *Lab) OwnView(t testing.TB, node string) { l.do(t, node, "view") }

// Recreate recreates the node with settings KEY=VALUE among SUITE
// (bullseye|bookworm), BM_VERSION, EXTERNAL_URL, VARIANT
// (legacy|bm4|bm4es|bm5), TZ, STORE, STORE_MODE (rw|ro), HOSTKEY (pinned|new).
func (l *Lab) Recreate(t testing.TB, node string, settings ...string) {
	l.do(t, node, "recreate", settings...)
}

func (l *Lab) do(t testing.TB, node, cmd string, args ...string) {
	t.Helper()
	checkNode(t, node)
	l.markDirty(node)
	l.mustSh(t, append([]string{cmd, node}, args...)...)
}

// InventoryPath is the lab's inventory (lab/.state/inventory.toml).
func (l *Lab) InventoryPath() string { return filepath.Join(l.state, "inventory.toml") }

// KnownHostsPath is the known_hosts file holding the lab's pinned host keys.
func (l *Lab) KnownHostsPath() string { return filepath.Join(l.state, "known_hosts") }

// IdentityPath is the lab's client private key.
func (l *Lab) IdentityPath() string { return filepath.Join(l.state, "id_ed25519") }

// StorePath is the host directory bind-mounted as every node's backup store.
func (l *Lab) StorePath() string { return filepath.Join(l.state, "backup") }

// IP returns the node's address on the lab network, as the inventory says.
func (l *Lab) IP(t testing.TB, node string) string {
	t.Helper()
	b, err := os.ReadFile(l.InventoryPath())
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "["):
			in = false
		case line == fmt.Sprintf("name = %q", node):
			in = true
		case in && strings.HasPrefix(line, "ip = "):
			return strings.Trim(strings.TrimPrefix(line, "ip = "), `"`)
		}
	}
	t.Fatalf("inventory: no ip for node %s", node)
	return ""
}

// EditInventory writes a copy of the lab inventory, in a test directory,
// where the node's key is set to value (a TOML literal, e.g. `"10.0.0.1"`),
// and returns its path. A key the node does not have yet is added to it
// (e.g. user or become, which override [ssh] for that node).
func (l *Lab) EditInventory(t testing.TB, node, key, value string) string {
	t.Helper()
	return l.EditInventoryFrom(t, l.InventoryPath(), node, key, value)
}

// EditInventoryFrom is EditInventory on the inventory at base (one that
// EditInventory returned, to change several keys).
func (l *Lab) EditInventoryFrom(t testing.TB, base, node, key, value string) string {
	t.Helper()
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := editInventory(strings.Split(string(b), "\n"), node, key, value)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "inventory.toml")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Prapush runs the prapush binary (built once per test binary from
// ./cmd/prapush) with args and returns its stdout, stderr and exit code.
// It skips the test while ./cmd/prapush does not build (it is written
// concurrently with these tests), saying why.
func (l *Lab) Prapush(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := l.PrapushPath(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	// The environment's ssh-agent and ssh config must not leak into the test.
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "HOME="+cmd.Dir, "NO_COLOR=1", "PRAPUSH_INVENTORY=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run prapush: %v", err)
	}
	return o.String(), e.String(), code
}

// PrapushPath builds ./cmd/prapush once and returns the binary's path, with
// the same skip rule as Prapush.
func (l *Lab) PrapushPath(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "prapush-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "prapush")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/prapush")
		cmd.Dir = l.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/prapush: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Skipf("waiting for cmd/prapush: %v", buildErr)
	}
	return binPath
}

// InventoryWithout writes a copy of the lab inventory, in a test directory,
// without node's [[nodes]] table, and returns its path: an architecture
// whose inventory forgot a server the backup knows.
func (l *Lab) InventoryWithout(t testing.TB, node string) string {
	t.Helper()
	b, err := os.ReadFile(l.InventoryPath())
	if err != nil {
		t.Fatal(err)
	}
	lines, err := dropInventoryNode(strings.Split(string(b), "\n"), node)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "inventory.toml")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dropInventoryNode removes node's [[nodes]] table (up to the next table).
func dropInventoryNode(lines []string, node string) ([]string, error) {
	start := -1
	for i, line := range lines {
		if line == "[[nodes]]" && i+1 < len(lines) && lines[i+1] == fmt.Sprintf("name = %q", node) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("inventory: no node %s", node)
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "[") {
			end = i
			break
		}
	}
	return slices.Delete(lines, start, end), nil
}

// editInventory sets key = value in node's [[nodes]] table of the inventory
// lines lab.sh writes, adding the key after the node's name when absent.
func editInventory(lines []string, node, key, value string) ([]string, error) {
	in, nameAt := false, -1
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, "["):
			in = false
		case line == fmt.Sprintf("name = %q", node):
			in, nameAt = true, i
		case in && strings.HasPrefix(line, key+" = "):
			lines[i] = key + " = " + value
			return lines, nil
		}
	}
	if nameAt < 0 {
		return nil, fmt.Errorf("inventory: no node %s", node)
	}
	return slices.Insert(lines, nameAt+1, key+" = "+value), nil
}
