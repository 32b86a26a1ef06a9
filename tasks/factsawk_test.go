package tasks

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prapush/prapush/internal/testenv"
)

// The facts script reads files with one awk instead of a process per file
// (dpkg-query, findmnt, stat, ip, cat...). These tests hold each of its
// readings against the tool it replaces, run on this machine.

// runAwk runs factsAwk with the given awk, environment and operands, and
// returns its records parsed as facts, and its exit status.
func runAwk(t *testing.T, awk string, env []string, args ...string) (*Facts, []Record, int) {
	t.Helper()
	cmd := exec.Command(awk, append([]string{factsAwk}, args...)...)
	cmd.Env = append([]string{"LC_ALL=C"}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	status := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", awk, err)
		}
		status = ee.ExitCode()
	}
	recs, err := ParseRecords(out.Bytes())
	if err != nil {
		t.Fatalf("%s output: %v\n%s\nstderr: %s", awk, err, out.String(), errb.String())
	}
	f, _ := ParseFacts(out.Bytes())
	return f, recs, status
}

// awks returns the awk implementations to try: mawk (Debian's), gawk
// (RHEL's) and busybox's, each as a path to run. CI installs all three.
func awks(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range []string{"mawk", "gawk"} {
		p, err := exec.LookPath(name)
		if err != nil {
			testenv.SkipOrFail(t, name+" not installed")
			continue
		}
		out[name] = p
	}
	if bb, err := exec.LookPath("busybox"); err != nil {
		testenv.SkipOrFail(t, "busybox not installed")
	} else {
		// busybox picks the applet from its name.
		link := filepath.Join(t.TempDir(), "awk")
		if err := os.Symlink(bb, link); err != nil {
			t.Fatal(err)
		}
		out["busybox"] = link
	}
	return out
}

func record(recs []Record, key string) (string, bool) {
	for _, r := range recs {
		if r.Key == key {
			return string(r.Value), true
		}
	}
	return "", false
}

// TestFactsAwk_PackagesAsDpkgQuery reads a dpkg database holding bm-*
// packages in every state that matters, and expects the lines
// dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}' prints for it.
func TestFactsAwk_PackagesAsDpkgQuery(t *testing.T) {
	dq, err := exec.LookPath("dpkg-query")
	if err != nil {
		testenv.SkipOrFail(t, "dpkg-query not installed")
	}
	admin := t.TempDir()
	status := `Package: adduser
Status: install ok installed
Priority: important
Version: 3.134
Description: add and remove users
 a line that says Package: bm-fake in a description

Package: bm-core
Status: install ok installed
Priority: optional
Section: misc
Installed-Size: 123
Maintainer: BlueMind <bm@example.com>
Architecture: all
Version: 4.8.2-1
Depends: bm-conf
Description: BlueMind core

Package: bm-conf
Status: install ok half-configured
Architecture: all
Version: 4.8.2-1
Description: conf

Package: bm-old
Status: deinstall ok config-files
Architecture: all
Version: 4.1.0
Description: removed, its configuration kept

Package: bm-broken
Status: install reinstreq half-installed
Architecture: all
Version: 4.8.2-1
Description: broken

Package: bm-held
Status: hold ok installed
Architecture: all
Version: 4.8.1-3
Description: held

Package: bm-gone
Status: purge ok not-installed
Architecture: all
Description: purged

Package: bm-wanted
Status: install ok not-installed
Architecture: all
Description: selected, not installed yet

Package: bm-dropped
Status: deinstall ok not-installed
Architecture: all
Version: 4.0.0
Description: deselected

Package: zz-bm-core-lookalike
Status: install ok installed
Architecture: all
Version: 1
Description: not a bm- package
`
	writeFile(t, filepath.Join(admin, "status"), status, 0o644)
	writeFile(t, filepath.Join(admin, "available"), "", 0o644)
	want, err := exec.Command(dq, "--admindir="+admin, "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\n", "bm-*").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	wantLines := lines(string(want))
	slices.Sort(wantLines)
	for name, awk := range awks(t) {
		t.Run(name, func(t *testing.T) {
			_, recs, st := runAwk(t, awk, nil, "dpkg", filepath.Join(admin, "status"))
			v, ok := record(recs, "pkg.list")
			if st != 0 || !ok {
				t.Fatalf("status %d, pkg.list %v", st, ok)
			}
			got := lines(v)
			slices.Sort(got)
			if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
				t.Errorf("pkg.list:\n%s\nwant (dpkg-query):\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
			}
		})
	}
}

// TestFactsAwk_MountAsStatAndFindmnt asks, for several paths of this
// machine, the mount they are on: the mount point must be stat --format %m's,
// and the source, type and options findmnt --target's.
func TestFactsAwk_MountAsStatAndFindmnt(t *testing.T) {
	fm, err := exec.LookPath("findmnt")
	if err != nil {
		testenv.SkipOrFail(t, "findmnt not installed")
	}
	wd, _ := os.Getwd()
	paths := []string{"/", "/proc", "/proc/sys", "/dev", t.TempDir(), wd}
	for name, awk := range awks(t) {
		t.Run(name, func(t *testing.T) {
			for _, p := range paths {
				f, _, _ := runAwk(t, awk, []string{"CSTORE=" + p}, "mounts", "/proc/self/mountinfo")
				mp, err := exec.Command("stat", "--format", "%m", p).Output()
				if err != nil {
					t.Fatal(err)
				}
				if f.StoreMountPoint != strings.TrimSpace(string(mp)) {
					t.Errorf("%s: mount point %q, stat %%m says %q", p, f.StoreMountPoint, strings.TrimSpace(string(mp)))
				}
				out, err := exec.Command(fm, "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "--target", p).Output()
				if err != nil {
					t.Fatal(err)
				}
				fs := strings.Fields(string(out))
				if len(fs) != 3 {
					t.Fatalf("findmnt %s: %q", p, out)
				}
				// findmnt writes a bind mount's source as "device[/dir]".
				src, _, _ := strings.Cut(fs[0], "[")
				if f.MountSource != src || f.MountFSType != fs[1] {
					t.Errorf("%s: source %q type %q, findmnt says %q %q", p, f.MountSource, f.MountFSType, src, fs[1])
				}
				got, want := strings.Split(f.MountOptions, ","), strings.Split(fs[2], ",")
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
					t.Errorf("%s: options %q, findmnt says %q", p, f.MountOptions, fs[2])
				}
			}
		})
	}
}

// TestFactsAwk_AddressesAsIPAddr reads /proc/net/fib_trie: the node's IPv4
// addresses must be ip addr's. When two of them have a part directory, the
// order matters (the script takes the first in ip addr order): awk then
// exits 3 and leaves the listing to ip addr.
func TestFactsAwk_AddressesAsIPAddr(t *testing.T) {
	ipb, err := exec.LookPath("ip")
	if err != nil {
		testenv.SkipOrFail(t, "ip not installed")
	}
	out, err := exec.Command(ipb, "addr").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := ParseIPAddr(string(out))
	slices.Sort(want)
	if len(want) < 2 {
		// Loopback and Docker's bridge at least, on every CI machine.
		testenv.SkipOrFail(t, "this machine has fewer than two IPv4 addresses; the order case needs two")
	}
	for name, awk := range awks(t) {
		t.Run(name, func(t *testing.T) {
			f, _, st := runAwk(t, awk, []string{"RSYNCDIRS= 192.0.2.200 " + want[0]}, "fib", "/proc/net/fib_trie")
			got := slices.Clone(f.IPv4)
			slices.Sort(got)
			if st != 0 || !slices.Equal(got, want) {
				t.Errorf("status %d, addresses %v, ip addr says %v", st, got, want)
			}
			f, _, st = runAwk(t, awk, []string{"RSYNCDIRS=" + want[0] + " " + want[1]}, "fib", "/proc/net/fib_trie")
			if st != 3 || len(f.IPv4) != 0 {
				t.Errorf("two addresses with part directories: status %d, addresses %v; want 3 and none", st, f.IPv4)
			}
		})
	}
}

// TestFactsScript_AddressOrderFromIPAddr runs the whole script where two of
// this machine's addresses have part directories: it must list them in ip
// addr's order, which is the script's.
func TestFactsScript_AddressOrderFromIPAddr(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.SkipOrFail(t, "ip not installed")
	}
	out, err := exec.Command("ip", "addr").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := ParseIPAddr(string(out))
	if len(want) < 2 {
		testenv.SkipOrFail(t, "this machine has fewer than two IPv4 addresses; the case needs two")
	}
	dir := t.TempDir()
	store := makeStore(t, dir)
	for _, ip := range want[:2] {
		if err := os.MkdirAll(filepath.Join(store, "dp_spool/rsync", ip), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	node := makeNode(t, dir)
	n := testNode("core", want[1], true)
	f, err := ParseFacts(runLocal(t, "sh", factsScript(node.roots(store, ""), testArch(), n, factsRun{Tries: 1})))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.IPv4, want) || f.ScriptHostIP() != want[0] {
		t.Errorf("addresses %v (script host ip %q), ip addr order %v", f.IPv4, f.ScriptHostIP(), want)
	}
}

// TestFactsScript_EveryAwk runs the whole script with each awk against the
// fake node and checks the facts awk reads.
func TestFactsScript_EveryAwk(t *testing.T) {
	for name, awk := range awks(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			store := makeStore(t, dir)
			node := makeNode(t, dir)
			n := testNode("core", "192.168.10.11", true)
			n.Python, n.RestoreScript = node.Python, node.Script
			r := node.roots(store, "192.168.10.11")
			r.Awk = awk
			out := runLocal(t, "dash", factsScript(r, testArch(), n, factsRun{RunID: "run1", Tries: 1, Dates: true}))
			f, err := ParseFacts(out)
			if err != nil || !f.Complete || f.ReadErr != "" {
				t.Fatalf("err %v complete %v read %q\n%s", err, f.Complete, f.ReadErr, out)
			}
			if f.UID != os.Getuid() || f.OSID != "ubuntu" || f.ScriptFamily != FamilyBM4ES || !slices.Equal(f.ScriptPGMajors, []int{14}) {
				t.Errorf("uid %d os %q family %q pg %v", f.UID, f.OSID, f.ScriptFamily, f.ScriptPGMajors)
			}
			if f.ExternalURL != "mail.acme.example" || f.DBHost != "192.168.10.11" || f.ServerUID != "bm-master" {
				t.Errorf("bm.ini %q %q server.uid %q", f.ExternalURL, f.DBHost, f.ServerUID)
			}
			if len(f.GenerationFiles) != 2 || string(f.GenerationFiles[0].Content) != string(fixture312(t)) || f.GenerationFiles[1].Kind != GenerationOK {
				t.Errorf("generation files %+v", f.GenerationFiles)
			}
			if f.StoreMountPoint == "" || f.ProbeUID != os.Getuid() || !f.ProbeRemoved {
				t.Errorf("mount %q probe uid %d removed %v", f.StoreMountPoint, f.ProbeUID, f.ProbeRemoved)
			}
			if len(f.LocalDates) != 2 {
				t.Errorf("node-rendered dates %v", f.LocalDates)
			}
		})
	}
}

// TestParseFacts_ReadErrors: what the facts say when awk is missing or a
// read error stopped it, and the /proc scan's second try.
func TestParseFacts_ReadErrors(t *testing.T) {
	rec := func(k, v string) Record { return Record{Key: k, Value: []byte(v)} }
	proc := rec("proc", "restore 42 python python -u bm-pra-restore.py")
	for _, c := range []struct {
		name string
		recs []Record
		want string // substring of ReadErr; "" = none
	}{
		{"complete", []Record{rec("files", "done"), rec("procs", "done"), rec("awk", "0")}, ""},
		{"ip order asked", []Record{rec("files", "done"), rec("procs", "done"), rec("awk", "3")}, ""},
		{"older script", nil, ""},
		{"no awk", []Record{rec("awk", "missing")}, "awk is not installed"},
		{"store read error", []Record{rec("gen.name", "generation-1.json"), rec("awk", "2"), rec("procs", "done"), rec("awk.procs", "0")}, "reading the node's files stopped"},
		{"proc scan retried", []Record{rec("files", "done"), proc, rec("awk", "2"), proc, rec("procs", "done"), rec("awk.procs", "0")}, ""},
		{"proc scan failed twice", []Record{rec("files", "done"), rec("awk", "2"), rec("awk.procs", "2")}, "the scan of the node's processes failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseFacts(frame(append(c.recs, rec("end", "ok"))))
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" && f.ReadErr != "" || c.want != "" && !strings.Contains(f.ReadErr, c.want) {
				t.Errorf("ReadErr %q, want %q", f.ReadErr, c.want)
			}
			if c.name == "proc scan retried" && len(f.RestoreProcesses) != 1 {
				t.Errorf("restore processes %q: the second scan's must not double the first's", f.RestoreProcesses)
			}
		})
	}
	// A node whose facts lack what awk reads is not judged on them.
	f, _ := ParseFacts(frame([]Record{rec("uid", "0"), rec("awk", "2"), rec("end", "ok")}))
	r := NodeResult{Node: testNode("core", "192.168.10.11", true), Reachable: true}
	r.setFacts(frame([]Record{rec("uid", "0"), rec("awk", "2"), rec("end", "ok")}), nil)
	if r.FactsErr == nil || f.ReadErr == "" {
		t.Fatalf("FactsErr %v", r.FactsErr)
	}
	all := []NodeResult{r}
	runNodeChecks(testArch(), all, 0, resolveGeneration("", summarize(all)), NopObserver{})
	for _, c := range all[0].Checks {
		if c.Status != Skip || !strings.Contains(c.Message, "facts incomplete") {
			t.Errorf("%s: %s %q, want skipped", c.ID, c.Status, c.Message)
		}
	}
}

// TestParseFacts_ProbeOwnedByTheUser: the script says "owned by me" rather
// than running stat; the owner is then the facts' uid.
func TestParseFacts_ProbeOwnedByTheUser(t *testing.T) {
	rec := func(k, v string) Record { return Record{Key: k, Value: []byte(v)} }
	f, _ := ParseFacts(frame([]Record{rec("uid", "0"), rec("probe.own", "1"), rec("end", "ok")}))
	if f.ProbeUID != 0 {
		t.Errorf("probe uid %d, want 0", f.ProbeUID)
	}
	f, _ = ParseFacts(frame([]Record{rec("probe.own", "1"), rec("end", "ok")}))
	if f.ProbeUID != -1 || f.ProbeErr == "" {
		t.Errorf("unknown uid: probe uid %d err %q", f.ProbeUID, f.ProbeErr)
	}
}

// TestFactsScript_AwkStoppedByAReadError runs the script with an awk that
// dies before reading anything on its first call (as mawk does on a read
// error) and works on the second: the script must go on to its end, scan
// /proc again, and the facts must say that the files were not read, so that
// the node's checks are skipped rather than judged on missing facts.
func TestFactsScript_AwkStoppedByAReadError(t *testing.T) {
	real, err := exec.LookPath("mawk")
	if err != nil {
		testenv.SkipOrFail(t, "mawk not installed")
	}
	dir := t.TempDir()
	store := makeStore(t, dir)
	node := makeNode(t, dir)
	calls := filepath.Join(dir, "calls")
	failing := filepath.Join(dir, "bin", "awk")
	// The program is the first operand; the /proc rescan has "--rescan"
	// right after it.
	writeFile(t, failing, "#!/bin/sh\necho x >> "+calls+"\n[ \"$2\" = --rescan ] && exec "+real+" \"$@\"\necho 'awk: read error (Input/output error)' >&2\nexit 2\n", 0o755)
	n := testNode("core", "192.168.10.11", true)
	n.Python, n.RestoreScript = node.Python, node.Script
	r := node.roots(store, "192.168.10.11")
	r.Awk = failing
	out := runLocal(t, "sh", factsScript(r, testArch(), n, factsRun{RunID: "run1", Tries: 1}))
	f, err := ParseFacts(out)
	if err != nil || !f.Complete {
		t.Fatalf("err %v complete %v\n%s", err, f.Complete, out)
	}
	if !strings.Contains(f.ReadErr, "reading the node's files stopped") || !strings.Contains(f.ReadErr, "status 2") {
		t.Errorf("ReadErr %q", f.ReadErr)
	}
	if b, _ := os.ReadFile(calls); strings.Count(string(b), "x") != 2 {
		t.Errorf("awk called %d times, want 2 (the files, then /proc again)", strings.Count(string(b), "x"))
	}
	// The addresses come from ip addr then, and the probe was still made
	// and removed.
	if len(f.IPv4) == 0 || !f.ProbeRemoved {
		t.Errorf("addresses %v, probe removed %v", f.IPv4, f.ProbeRemoved)
	}
	res := NodeResult{Node: n, Reachable: true}
	res.setFacts(out, nil)
	if res.FactsErr == nil || !strings.Contains(res.FactsErr.Error(), "reading the node's files stopped") {
		t.Errorf("FactsErr %v", res.FactsErr)
	}
}

// TestNewGenFile_SharesTheParseNotTheGeneration: the nodes of an
// architecture read the same files, parsed once; each node must still get a
// Generation of its own (callers may change theirs).
func TestNewGenFile_SharesTheParseNotTheGeneration(t *testing.T) {
	body := fixture312(t)
	a := newGenFile("generation-312.json", body, true)
	b := newGenFile("generation-312.json", bytes.Clone(body), true)
	if a.Gen == nil || b.Gen == nil || a.Gen == b.Gen || a.SHA256 != b.SHA256 {
		t.Fatalf("generations %p %p, sha %s %s", a.Gen, b.Gen, a.SHA256, b.SHA256)
	}
	a.Gen.DisplayName = "changed"
	a.Gen.Parts[0].Tag = "changed"
	*a.Gen.Parts[0].End = 1
	if b.Gen.DisplayName == "changed" || b.Gen.Parts[0].Tag == "changed" || *b.Gen.Parts[0].End == 1 {
		t.Errorf("a change to one node's generation shows in another's: %+v", b.Gen.Parts[0])
	}
	c := newGenFile("generation-312.json", body, true)
	if c.Gen.DisplayName == "changed" || c.Gen.Parts[0].Tag == "changed" {
		t.Errorf("a change to one node's generation reached the shared parse")
	}
}
