package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/internal/testenv"
)

// Families of the fake script, in the order of BlueMind history.
var families = []string{"legacy", "bm4", "bm4es", "bm5"}

const (
	coreIP = "192.168.10.11"
	dataIP = "192.168.10.12"
	// Generation 312 is the newest; generation 310 (older, with errors) comes first in
	// the menu although written second, to prove the sort is by protectionTime.
	pt312 = int64(1647291602417)
	pt310 = int64(1647205202417)
)

// labImage returns the image under test, skipping (or failing in CI) when Docker or the
// image is missing.
func labImage(t *testing.T, suite string) string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		testenv.SkipOrFail(t, "docker not installed")
	}
	img := "prapush-lab-node:" + suite
	if v := os.Getenv("PRAPUSH_LAB_IMAGE"); v != "" && suite == "bullseye" {
		img = v
	}
	if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
		testenv.SkipOrFail(t, "image "+img+" missing (build it with lab/image/build.sh)")
	}
	return img
}

type part struct {
	ID  int
	Tag string
	IP  string
}

type generation struct {
	ID           int
	PT           int64
	Name         string
	WithErrors   bool
	WithWarnings bool
	Parts        []part
}

// tree is a small backup store: generation files plus, for the parts listed in
// onDisk, their dp_spool/rsync/<ip>/<tag>/<id> directories with a minimal payload.
type tree struct {
	gens   []generation
	onDisk map[int]bool // part ids whose directory exists; nil = all parts of all gens
	pg     string       // PostgreSQL major of the pg payload
	extra  map[string]string
}

// standardGens returns generation 310 (older, withErrors) and 312 (two nodes: the core
// with conf/core/pgsql/es/imap/filehosting, a data node with conf/pgsql-data/imap).
func standardGens() []generation {
	return []generation{
		{ID: 312, PT: pt312, Name: "4.8.2", Parts: []part{
			{2041, "bm/conf", coreIP}, {2042, "bm/core", coreIP}, {2043, "bm/pgsql", coreIP},
			{2044, "bm/es", coreIP}, {2045, "filehosting/data", coreIP}, {2046, "mail/imap", coreIP},
			{2047, "bm/conf", dataIP}, {2048, "bm/pgsql-data", dataIP}, {2049, "mail/imap", dataIP},
		}},
		{ID: 310, PT: pt310, Name: "4.8.1", WithErrors: true, Parts: []part{
			{2001, "bm/conf", coreIP}, {2002, "bm/es", coreIP},
		}},
	}
}

func (tr tree) write(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	pg := tr.pg
	if pg == "" {
		pg = "14"
	}
	for _, g := range tr.gens {
		type jpart struct {
			ID           int    `json:"id"`
			GenerationID int    `json:"generationId"`
			Begin        int64  `json:"begin"`
			End          int64  `json:"end"`
			Size         int    `json:"size"`
			Tag          string `json:"tag"`
			Server       string `json:"server"`
			WithWarnings bool   `json:"withWarnings"`
			WithErrors   bool   `json:"withErrors"`
			Valid        string `json:"valid"`
			Datatype     string `json:"datatype"`
		}
		doc := map[string]any{}
		var parts []jpart
		for i, p := range g.Parts {
			server := "bm-master"
			if p.IP != coreIP {
				server = "uid-" + p.IP
			}
			parts = append(parts, jpart{p.ID, g.ID, g.PT + int64(i)*1000, g.PT + int64(i)*1000 + 500,
				1, p.Tag, server, false, false, "VALID", "x"})
			if tr.onDisk == nil || tr.onDisk[p.ID] {
				writePayload(t, filepath.Join(root, "dp_spool/rsync", p.IP, p.Tag, strconv.Itoa(p.ID)), p, pg)
			}
		}
		doc["id"] = g.ID
		doc["protectionTime"] = g.PT
		doc["blueMind"] = map[string]string{"major": "4", "minor": "1", "release": "63476", "displayName": g.Name}
		doc["withWarnings"] = g.WithWarnings
		doc["withErrors"] = g.WithErrors
		doc["parts"] = parts
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, fmt.Sprintf("generation-%d.json", g.ID)), string(b))
	}
	for name, content := range tr.extra {
		writeFile(t, filepath.Join(root, name), content)
	}
	for _, d := range []string{"work", "temp", "dp_spool/rsync"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func writePayload(t *testing.T, dir string, p part, pg string) {
	t.Helper()
	conf := "var/backups/bluemind/work/conf/etc/"
	files := map[string]string{}
	switch p.Tag {
	case "bm/conf":
		files[conf+"bm/bm.ini"] = "[global]\nexternal-url = restored.lab.invalid\nhost = " + coreIP + "\n"
		files[conf+"bm/bm-core.tok"] = "restored-token-" + strconv.Itoa(p.ID)
		files[conf+"bm/server.uid"] = "uid-" + p.IP
		files[conf+"bm/certs/bm_cert.pem"] = "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"
		files[conf+"bm-node/rsync.excludes"] = "*.tmp\n"
		files[conf+"postfix/main.cf"] = "myhostname = restored.lab.invalid\n"
		files[conf+"imapd.conf"] = "configdirectory: /var/lib/cyrus\n"
	case "bm/core":
		files["var/backups/bluemind/work/directory/lab.invalid/announced.version"] = "42\n"
	case "bm/pgsql":
		files["var/backups/bluemind/work/pgsql/dump.sql"] = "dump\n"
		files["var/backups/bluemind/work/pgsql/configuration/"+pg+"/main/postgresql.conf"] = "port = 5432\n"
	case "bm/pgsql-data":
		files["var/backups/bluemind/work/pgsql-data/dump.sql"] = "dump\n"
		files["var/backups/bluemind/work/pgsql-data/configuration/"+pg+"/main/postgresql.conf"] = "port = 5432\n"
	case "bm/es":
		files["var/spool/bm-elasticsearch/repo/index-0"] = "{}\n"
	case "mail/imap":
		files["var/spool/cyrus/data/lab_invalid/domain/l/lab.invalid/u/user/alice/1."] = "Subject: hi\n\nbody\n"
		files["var/lib/cyrus/mailboxes.db"] = "db\n"
	case "filehosting/data":
		files["var/spool/bm-filehosting/a/file1"] = "data\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run describes one execution of the fake script inside a throw-away container.
type run struct {
	suite   string            // image suite, default bullseye
	variant string            // script family installed with lab-set-variant
	store   string            // host dir mounted at /var/backups/bluemind ("" = none)
	knobs   map[string]string // FAKE_PRA_<key> environment
	conf    string            // content of /etc/fake-bm-pra.conf ("" = none)
	stdin   string
	tz      string
	// invoke is the shell command that starts the script; default is the safe
	// invocation (cd + bare name).
	invoke string
	// after are shell commands run once the script ended; their output (stdout+stderr)
	// is returned in result.after, in order.
	after []string
}

type result struct {
	stdout, stderr string
	rc             int
	after          []string
}

const safeInvoke = "cd /usr/share/bm-node && python bm-pra-restore.py"

func (r run) shell() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab-set-variant %s >/dev/null || exit 120\n", r.variant)
	if r.conf != "" {
		b.WriteString("cp /out/fake-bm-pra.conf /etc/fake-bm-pra.conf\n")
	}
	return b.String()
}

func (r run) dockerArgs(t *testing.T, name, out string) []string {
	args := []string{"run", "--rm", "-i", "--name", name, "--network", "none",
		"--entrypoint", "/bin/sh", "-v", out + ":/out"}
	if r.store != "" {
		args = append(args, "-v", r.store+":/var/backups/bluemind")
	}
	if r.tz != "" {
		args = append(args, "-e", "TZ="+r.tz)
	}
	for k, v := range r.knobs {
		args = append(args, "-e", "FAKE_PRA_"+k+"="+v)
	}
	if r.conf != "" {
		writeFile(t, filepath.Join(out, "fake-bm-pra.conf"), r.conf)
	}
	suite := r.suite
	if suite == "" {
		suite = "bullseye"
	}
	return append(args, labImage(t, suite))
}

func containerName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "prapush-nodetest-" + hex.EncodeToString(b)
}

// exec runs the script to completion and returns its outputs.
func (r run) exec(t *testing.T) result {
	t.Helper()
	out := t.TempDir()
	name := containerName()
	invoke := r.invoke
	if invoke == "" {
		invoke = safeInvoke
	}
	script := r.shell() + "(" + invoke + ") >/out/stdout 2>/out/stderr\necho $? >/out/rc\n"
	for i, c := range r.after {
		script += fmt.Sprintf("(%s) >/out/after-%d 2>&1\n", c, i)
	}
	// The deadline only protects the test run from a bug that would hang; no assertion
	// depends on time.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(r.dockerArgs(t, name, out), "-c", script)
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = strings.NewReader(r.stdin)
	var diag bytes.Buffer
	cmd.Stdout, cmd.Stderr = &diag, &diag
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker run: %v\n%s", err, diag.String())
	}
	res := result{stdout: readOut(t, out, "stdout"), stderr: readOut(t, out, "stderr")}
	rc, err := strconv.Atoi(strings.TrimSpace(readOut(t, out, "rc")))
	if err != nil {
		t.Fatalf("read rc: %v", err)
	}
	res.rc = rc
	for i := range r.after {
		res.after = append(res.after, readOut(t, out, fmt.Sprintf("after-%d", i)))
	}
	return res
}

func readOut(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// stream starts the script and returns its live stdout; the container is removed at
// the end of the test (the script under test is expected never to exit by itself).
func (r run) stream(t *testing.T) *bufio.Reader {
	t.Helper()
	out := t.TempDir()
	name := containerName()
	invoke := r.invoke
	if invoke == "" {
		invoke = safeInvoke
	}
	args := append(r.dockerArgs(t, name, out), "-c", r.shell()+"exec sh -c '"+invoke+"'")
	cmd := exec.Command("docker", args...)
	if r.stdin != "" {
		cmd.Stdin = strings.NewReader(r.stdin)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker run: %v", err)
	}
	t.Cleanup(func() {
		// Drain the output BEFORE removing the container: a script that
		// loops (the EOF menu loop) fills the attach stream, and the
		// daemon then cannot stop the container until someone reads it
		// (docker rm -f was seen blocked for minutes). Kill the client
		// too, bounded, in case the daemon still does not let go.
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, stdout); close(drained) }()
		_ = exec.Command("docker", "rm", "-f", name).Run()
		select {
		case <-drained:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-drained
		}
		_ = cmd.Wait()
	})
	return bufio.NewReaderSize(stdout, 1<<16)
}

// menuBytes is what the family prints for one display of the menu of gens (already in
// menu order) in location loc.
func menuBytes(family string, loc *time.Location, gens ...generation) string {
	var b strings.Builder
	for i, g := range gens {
		status := "OK"
		if g.WithErrors {
			status = "Ending with errors"
		} else if g.WithWarnings {
			status = "Ending with warnings"
		}
		date := time.Unix(g.PT/1000, 0).In(loc).Format("2006-01-02 15:04:05")
		fmt.Fprintf(&b, "%d\t%s\t%s\tstatus: %s", i+1, date, g.Name, status)
		if family == "legacy" {
			b.WriteString("\n")
		}
	}
	prompt := fmt.Sprintf("Choose backup generation to restore (1-%d): ", len(gens))
	if family == "legacy" {
		return b.String() + prompt
	}
	return b.String() + "\n" + prompt + "\n"
}

// steps returns the step descriptions that ended OK, in order.
func steps(stdout string) []string {
	var got []string
	for _, m := range okStep.FindAllStringSubmatch(stdout, -1) {
		got = append(got, m[1])
	}
	return got
}

var okStep = regexp.MustCompile(`\r([^\r\n]*) OK\n`)

func readFull(r io.Reader, buf []byte) (int, error) { return io.ReadFull(r, buf) }

func removeFile(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
