package tasks

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prapush/prapush/transport"
)

// fleetFixture is a healthy two-node architecture (the shared fixture's
// core 192.168.10.11 and data server 192.168.10.12) on recorded facts.
type fleetFixture struct {
	results []NodeResult
	gen     *genChoice
}

func newFleetFixture(t *testing.T, generation string) *fleetFixture {
	t.Helper()
	core := loadFacts(t, "captured-core.out")
	data := loadFacts(t, "captured-core.out")
	for _, f := range []*Facts{core, data} {
		f.StoreMountPoint, f.MountSource, f.MountFSType, f.MountOptions = "/var/backups/bluemind", "nas:/backup", "nfs", "rw,hard,vers=3"
		f.Packages = []Package{{"bm-node", "4.8.2.1234", "ii "}, {"bm-conf", "4.8.2.1234", "ii "}}
		f.ProbeUID, f.ProbeRemoved = 0, true
	}
	core.Packages = append(core.Packages, Package{"bm-core", "4.8.2.1234", "ii "})
	core.ProbesSeen = []string{probeName("r", "data")}
	data.ProbesSeen = []string{probeName("r", "core")}
	data.IPv4 = []string{"127.0.0.1", "192.168.10.12"}
	data.ServerUID = "8d3c0a52-6c1e-4f4e-9b2a-5d2f3e7c1a90"
	fx := &fleetFixture{results: []NodeResult{
		{Node: testNode("core", "192.168.10.11", true, "bm/core", "bm/pgsql", "bm/es"), Reachable: true, Facts: core},
		{Node: testNode("data", "192.168.10.12", false, "mail/imap", "bm/pgsql-data"), Reachable: true, Facts: data},
	}}
	fx.gen = resolveGeneration(generation, summarize(fx.results))
	return fx
}

func (fx *fleetFixture) env(i int) *nodeEnv {
	r := &fx.results[i]
	return &nodeEnv{Arch: testArch(), Node: r.Node, Facts: r.Facts, Result: r, All: fx.results, Gen: fx.gen}
}

type checkCase struct {
	name   string
	node   int // 0 core, 1 data
	gen    string
	mutate func(fx *fleetFixture)
	want   Status
	msg    string // substring of the message
}

func runCheckCases(t *testing.T, fn func(*nodeEnv) (Status, string), cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFleetFixture(t, c.gen)
			if c.mutate != nil {
				c.mutate(fx)
				fx.gen = resolveGeneration(c.gen, summarize(fx.results))
			}
			st, msg := fn(fx.env(c.node))
			if st != c.want || !strings.Contains(msg, c.msg) {
				t.Errorf("got %s %q, want %s containing %q", st, msg, c.want, c.msg)
			}
		})
	}
}

func core(fx *fleetFixture) *Facts { return fx.results[0].Facts }
func data(fx *fleetFixture) *Facts { return fx.results[1].Facts }

func TestCheckSSHConnect(t *testing.T) {
	cases := []struct {
		err  error
		want Status
		msg  string
	}{
		{nil, Pass, "connected"},
		{fmt.Errorf("dial x: %w", transport.ErrUnreachable), Fail, "unreachable"},
		{fmt.Errorf("dial x: %w", transport.ErrAuth), Fail, "authentication"},
		{fmt.Errorf("dial x: %w", transport.ErrHostKey), Fail, "host key"},
		{fmt.Errorf("dial x: %w", transport.ErrPrivilege), Pass, "see ssh.privilege"},
	}
	for _, c := range cases {
		r := &NodeResult{Node: testNode("n", "10.0.0.1", false), DialErr: c.err}
		res := checkSSHConnect(r)
		if res.Status != c.want || !strings.Contains(res.Message, c.msg) || res.ID != CheckSSHConnect {
			t.Errorf("%v: got %s %q", c.err, res.Status, res.Message)
		}
	}
}

func TestCheckSSHPrivilege(t *testing.T) {
	cases := []struct {
		r    NodeResult
		want Status
	}{
		{NodeResult{Facts: &Facts{UID: 0}}, Pass},
		{NodeResult{Facts: &Facts{UID: 1000}}, Fail},
		{NodeResult{Facts: &Facts{UID: -1}}, Fail},
		{NodeResult{FactsErr: errors.New("boom")}, Fail},
		{NodeResult{DialErr: transport.ErrPrivilege}, Fail},
		{NodeResult{DialErr: transport.ErrUnreachable}, Skip},
	}
	for i, c := range cases {
		if res := checkSSHPrivilege(&c.r); res.Status != c.want {
			t.Errorf("case %d: got %s %q, want %s", i, res.Status, res.Message, c.want)
		}
	}
}

func TestCheckBackupPresent(t *testing.T) {
	runCheckCases(t, checkBackupPresent, []checkCase{
		{name: "directory", want: Pass},
		{name: "missing", mutate: func(fx *fleetFixture) { core(fx).StoreIsDir = false }, want: Fail, msg: "missing"},
	})
}

func TestCheckBackupMounted(t *testing.T) {
	runCheckCases(t, checkBackupMounted, []checkCase{
		{name: "dedicated hard NFS", want: Pass, msg: "nas:/backup"},
		{name: "on root", mutate: func(fx *fleetFixture) { core(fx).StoreMountPoint = "/" }, want: Fail, msg: "on /"},
		{name: "on /var", mutate: func(fx *fleetFixture) { core(fx).StoreMountPoint = "/var" }, want: Fail, msg: "/var"},
		{name: "soft NFS", mutate: func(fx *fleetFixture) { core(fx).MountOptions = "rw,soft,noatime" }, want: Warn, msg: "soft"},
		{name: "unknown mount point", mutate: func(fx *fleetFixture) { core(fx).StoreMountPoint = "" }, want: Warn},
		{name: "no store", mutate: func(fx *fleetFixture) { core(fx).StoreIsDir = false }, want: Skip},
	})
}

func TestCheckBackupWritable(t *testing.T) {
	runCheckCases(t, checkBackupWritable, []checkCase{
		{name: "root owned and removed", want: Pass},
		{name: "root_squash", mutate: func(fx *fleetFixture) { core(fx).ProbeUID = 65534 }, want: Fail, msg: "uid 65534"},
		{name: "read-only", mutate: func(fx *fleetFixture) { core(fx).ProbeErr, core(fx).ProbeUID = "Read-only file system", -1 }, want: Fail, msg: "Read-only"},
		{name: "not removed", mutate: func(fx *fleetFixture) { core(fx).ProbeRemoved, core(fx).ProbeRmErr = false, "Permission denied" }, want: Fail, msg: "remove"},
		{name: "no probe", mutate: func(fx *fleetFixture) { core(fx).ProbeUID = -1 }, want: Skip},
	})
}

func TestCheckBackupShared(t *testing.T) {
	runCheckCases(t, checkBackupShared, []checkCase{
		{name: "sees the other", want: Pass, msg: "1 node"},
		{name: "does not see", mutate: func(fx *fleetFixture) {
			core(fx).ProbesSeen, core(fx).ProbesMissing = nil, []string{probeName("r", "data")}
		}, want: Fail, msg: "data"},
		{name: "round 2 failed", mutate: func(fx *fleetFixture) { core(fx).SharedErr = errors.New("cut") }, want: Fail, msg: "cut"},
		{name: "no own probe", mutate: func(fx *fleetFixture) { core(fx).ProbeUID = -1 }, want: Skip},
	})
}

func TestCheckBackupGenerations(t *testing.T) {
	crash := func(fx *fleetFixture) {
		core(fx).GenerationFiles = append(core(fx).GenerationFiles, newGenFile("generation-400.json", []byte(`{"id":400,"withErrors":false}`), true))
	}
	runCheckCases(t, checkBackupGenerations, []checkCase{
		{name: "captured has an invalid file", want: Warn, msg: "generation-9.json"},
		{name: "all loadable", mutate: func(fx *fleetFixture) { core(fx).GenerationFiles = core(fx).GenerationFiles[:2] }, want: Pass, msg: "2 generation"},
		{name: "crash file", mutate: crash, want: Fail, msg: "generation-400.json (parse generation: no protectionTime)"},
		{name: "none", mutate: func(fx *fleetFixture) { core(fx).GenerationFiles = nil }, want: Fail, msg: "no generation"},
		{name: "only invalid", mutate: func(fx *fleetFixture) { core(fx).GenerationFiles = core(fx).GenerationFiles[2:] }, want: Fail, msg: "no loadable"},
		{name: "no store", mutate: func(fx *fleetFixture) { core(fx).StoreIsDir = false }, want: Skip},
	})
}

func TestCheckBackupIdle(t *testing.T) {
	runCheckCases(t, checkBackupIdle, []checkCase{
		{name: "idle", want: Pass},
		{name: "rsync running", mutate: func(fx *fleetFixture) {
			core(fx).RsyncProcesses = []string{"42 rsync -rltDH /var/spool/cyrus/ /var/backups/bluemind/dp_spool/rsync/192.168.10.11/mail/imap/3000/"}
		}, want: Fail, msg: "42 rsync"},
	})
}

func TestCheckHostIP(t *testing.T) {
	runCheckCases(t, checkHostIP, []checkCase{
		{name: "present", want: Pass},
		{name: "absent", mutate: func(fx *fleetFixture) { core(fx).IPv4 = []string{"127.0.0.1", "10.9.9.9"} }, want: Fail, msg: "10.9.9.9"},
		{name: "none", mutate: func(fx *fleetFixture) { core(fx).IPv4 = nil }, want: Fail, msg: "no IPv4"},
	})
}

func TestCheckHostBackupData(t *testing.T) {
	runCheckCases(t, checkHostBackupData, []checkCase{
		{name: "first match", want: Pass},
		{name: "loopback hijacks", mutate: func(fx *fleetFixture) {
			core(fx).RsyncDirs = append(core(fx).RsyncDirs, "127.0.0.1")
		}, want: Fail, msg: "dp_spool/rsync/127.0.0.1"},
		{name: "missing", mutate: func(fx *fleetFixture) { core(fx).RsyncDirs = []string{"192.168.10.12"} }, want: Fail, msg: "missing"},
		{name: "ip not local", mutate: func(fx *fleetFixture) { core(fx).IPv4 = []string{"127.0.0.1"} }, want: Fail, msg: "would not find"},
		{name: "no store", mutate: func(fx *fleetFixture) { core(fx).StoreIsDir = false }, want: Skip},
	})
}

func TestCheckBlueMindInstalled(t *testing.T) {
	runCheckCases(t, checkBlueMindInstalled, []checkCase{
		{name: "installed", want: Pass},
		{name: "no token", mutate: func(fx *fleetFixture) { core(fx).TokenPresent = false }, want: Fail, msg: "bm-core.tok"},
		{name: "no bm.ini", mutate: func(fx *fleetFixture) { core(fx).BMIniPresent = false }, want: Fail, msg: "bm.ini"},
		{name: "no host", mutate: func(fx *fleetFixture) { core(fx).DBHost = "" }, want: Fail, msg: "host"},
		{name: "data node unregistered", node: 1, mutate: func(fx *fleetFixture) { data(fx).ServerUID = "" }, want: Warn, msg: "server.uid"},
	})
}

func TestCheckBlueMindVersion(t *testing.T) {
	older := func(fx *fleetFixture) {
		for _, f := range []*Facts{core(fx), data(fx)} {
			for i := range f.GenerationFiles {
				if g := f.GenerationFiles[i].Gen; g != nil && g.ID == 312 {
					g.DisplayName = "4.8.1"
				}
			}
		}
	}
	runCheckCases(t, checkBlueMindVersion, []checkCase{
		{name: "same release", want: Pass, msg: "4.8.2.1234"},
		{name: "other release", mutate: func(fx *fleetFixture) { core(fx).Packages[0].Version = "4.8.10.1" }, want: Fail, msg: "bm-node 4.8.10.1"},
		{name: "nothing installed", mutate: func(fx *fleetFixture) { core(fx).Packages = nil }, want: Fail, msg: "no bm-*"},
		{name: "core lacks bm-core", mutate: func(fx *fleetFixture) { core(fx).Packages = core(fx).Packages[:2] }, want: Fail, msg: "bm-core"},
		{name: "removed package ignored", node: 1, mutate: func(fx *fleetFixture) {
			data(fx).Packages = append(data(fx).Packages, Package{"bm-old", "3.5", "rc "})
		}, want: Pass},
		{name: "generation of another release", gen: "312", mutate: older, want: Warn, msg: "4.8.1"},
	})
	for _, c := range []struct {
		v    string
		want bool
	}{{"4.8.2", true}, {"4.8.2.1234", true}, {"4.8.2-1", true}, {"4.8.2~rc1", true}, {"4.8.2+b1", true}, {"4.8.20", false}, {"4.8", false}} {
		if got := VersionMatches(c.v, "4.8.2"); got != c.want {
			t.Errorf("VersionMatches(%q) = %v", c.v, got)
		}
	}
}

func TestCheckBlueMindExternalURL(t *testing.T) {
	runCheckCases(t, checkBlueMindExternalURL, []checkCase{
		{name: "same", want: Pass},
		{name: "different", mutate: func(fx *fleetFixture) { core(fx).ExternalURL = "old.acme.example" }, want: Fail, msg: "old.acme.example"},
		{name: "no bm.ini", mutate: func(fx *fleetFixture) { core(fx).BMIniPresent = false }, want: Skip},
	})
}

func TestCheckOSRelease(t *testing.T) {
	runCheckCases(t, checkOSRelease, []checkCase{
		{name: "as inventory", want: Pass},
		{name: "other than inventory", mutate: func(fx *fleetFixture) { core(fx).OSVersionID = "20.04" }, want: Fail, msg: "ubuntu 20.04"},
		{name: "nodes differ", mutate: func(fx *fleetFixture) { data(fx).OSVersionID = "20.04" }, want: Warn, msg: "data=ubuntu 20.04"},
		{name: "no os-release", mutate: func(fx *fleetFixture) { core(fx).OSID = "" }, want: Fail},
	})
}

func TestCheckOSPython(t *testing.T) {
	runCheckCases(t, checkOSPython, []checkCase{
		{name: "python 2", want: Pass},
		{name: "python 3", mutate: func(fx *fleetFixture) { core(fx).PythonMajor, core(fx).PythonOutput = 3, "3\n" }, want: Fail, msg: "3"},
		{name: "missing", mutate: func(fx *fleetFixture) { core(fx).PythonExists = false }, want: Fail, msg: "missing"},
		{name: "not executable", mutate: func(fx *fleetFixture) { core(fx).PythonExecutable = false }, want: Fail, msg: "executable"},
	})
}

func TestCheckRestoreScript(t *testing.T) {
	runCheckCases(t, checkRestoreScript, []checkCase{
		{name: "bm4-es", want: Pass, msg: "bm4-es"},
		{name: "missing", mutate: func(fx *fleetFixture) { core(fx).ScriptExists = false }, want: Fail, msg: "missing"},
		{name: "not executable", mutate: func(fx *fleetFixture) { core(fx).ScriptExecutable = false }, want: Fail, msg: "executable"},
		{name: "unknown family", mutate: func(fx *fleetFixture) { core(fx).ScriptFamily = "" }, want: Warn, msg: "not recognised"},
		{name: "bm5 with mail/imap", gen: "312", node: 1, mutate: func(fx *fleetFixture) { data(fx).ScriptFamily = FamilyBM5 }, want: Fail, msg: "mail/imap"},
		{name: "bm5 without a chosen generation uses the tags", node: 1, mutate: func(fx *fleetFixture) { data(fx).ScriptFamily = FamilyBM5 }, want: Fail, msg: "mail/imap"},
	})
}

func TestCheckRestorePostgreSQL(t *testing.T) {
	runCheckCases(t, checkRestorePostgreSQL, []checkCase{
		{name: "installed", gen: "312", want: Pass, msg: "14"},
		{name: "data node restoring pgsql-data", gen: "312", node: 1, mutate: func(fx *fleetFixture) { data(fx).PostgresDirs = []string{"11"} }, want: Fail, msg: "/etc/postgresql/14"},
		{name: "no PostgreSQL part", gen: "312", node: 1, mutate: func(fx *fleetFixture) {
			data(fx).PartDirs = []string{"192.168.10.12/mail/imap/2049"}
			fx.results[1].Node.Tags = nil
			data(fx).PostgresDirs = nil
		}, want: Pass, msg: "no PostgreSQL"},
		{name: "no marker in the script", gen: "312", mutate: func(fx *fleetFixture) { core(fx).ScriptPGMajors = nil }, want: Warn},
	})
}

func TestCheckRestoreIdle(t *testing.T) {
	runCheckCases(t, checkRestoreIdle, []checkCase{
		{name: "idle", want: Pass},
		{name: "script running", mutate: func(fx *fleetFixture) {
			core(fx).RestoreProcesses = []string{"77 /usr/bin/python -u bm-pra-restore.py"}
		}, want: Fail, msg: "77"},
		{name: "prapush run live", mutate: func(fx *fleetFixture) { core(fx).LiveRuns = []string{"/var/lib/prapush/runs/20260101-x"} }, want: Fail, msg: "runs/"},
	})
}

func TestCheckDiskSpace(t *testing.T) {
	runCheckCases(t, checkDiskSpace, []checkCase{
		{name: "enough", gen: "312", mutate: func(fx *fleetFixture) { setAvail(core(fx), 1<<30) }, want: Pass},
		{name: "short for cyrus", gen: "312", mutate: func(fx *fleetFixture) {
			setAvail(core(fx), 1<<30)
			core(fx).DiskAvailMB["/var/spool/cyrus"] = 100
		}, want: Warn, msg: "/var/spool/cyrus: 100 MB free, need 48212 MB"},
		{name: "unknown", gen: "312", mutate: func(fx *fleetFixture) { core(fx).DiskAvailMB = map[string]int64{} }, want: Warn, msg: "unknown"},
		{name: "newest generation when none chosen", mutate: func(fx *fleetFixture) { setAvail(core(fx), 1<<30) }, want: Pass, msg: "newest generation 313"},
		{name: "no generation", mutate: func(fx *fleetFixture) { core(fx).GenerationFiles = nil }, want: Skip},
	})
}

func setAvail(f *Facts, n int64) {
	for _, p := range restoredPaths {
		f.DiskAvailMB[p] = n
	}
}

func TestCheckGenerationParts(t *testing.T) {
	dupTime := func(fx *fleetFixture) {
		for _, f := range []*Facts{core(fx), data(fx)} {
			b := strings.Replace(string(fixture312(t)), `"id":312`, `"id":320`, 1)
			f.GenerationFiles = append(f.GenerationFiles, newGenFile("generation-320.json", []byte(b), true))
		}
	}
	sameLine := func(fx *fleetFixture) {
		for _, f := range []*Facts{core(fx), data(fx)} {
			b := strings.Replace(string(fixture312(t)), `"id":312,"protectionTime":1647291602417`, `"id":321,"protectionTime":1647291602900`, 1)
			f.GenerationFiles = append(f.GenerationFiles, newGenFile("generation-321.json", []byte(b), true))
		}
	}
	runCheckCases(t, checkGenerationParts, []checkCase{
		{name: "none chosen", want: Skip},
		{name: "core", gen: "312", want: Pass, msg: "menu index 1"},
		{name: "data", gen: "latest", node: 1, want: Pass, msg: "parts bm/conf, bm/pgsql-data, mail/imap"},
		{name: "unfinished", gen: "313", want: Fail, msg: "bm/es/2051 (UNKNOWN, end null)"},
		{name: "unknown id", gen: "999", want: Fail, msg: "999"},
		{name: "missing tag", gen: "312", node: 1, mutate: func(fx *fleetFixture) { fx.results[1].Node.Tags = append(fx.results[1].Node.Tags, "mail/archive") }, want: Fail, msg: "mail/archive"},
		{name: "no part for node", gen: "312", node: 1, mutate: func(fx *fleetFixture) { fx.results[1].Node.IP = testNode("x", "10.1.1.1", false).IP }, want: Fail, msg: "no part under dp_spool/rsync/10.1.1.1"},
		{name: "missing es part for bm4+", gen: "312", mutate: func(fx *fleetFixture) {
			core(fx).PartDirs = removeItem(core(fx).PartDirs, "192.168.10.11/bm/es/2044")
			data(fx).PartDirs = removeItem(data(fx).PartDirs, "192.168.10.11/bm/es/2044")
		}, want: Fail, msg: "bm/es"},
		{name: "legacy needs bm/core", gen: "312", mutate: func(fx *fleetFixture) {
			core(fx).ScriptFamily = FamilyLegacy
			core(fx).PartDirs = removeItem(core(fx).PartDirs, "192.168.10.11/bm/core/2042")
			data(fx).PartDirs = removeItem(data(fx).PartDirs, "192.168.10.11/bm/core/2042")
		}, want: Fail, msg: "bm/core"},
		{name: "shared protectionTime", gen: "312", mutate: dupTime, want: Fail, msg: "protectionTime"},
		{name: "shared menu line", gen: "312", mutate: sameLine, want: Fail, msg: "same second"},
		{name: "crash file", gen: "312", mutate: func(fx *fleetFixture) {
			core(fx).GenerationFiles = append(core(fx).GenerationFiles, newGenFile("generation-1.json", []byte(`[]`), true))
		}, want: Fail, msg: "crash"},
	})
}

func removeItem(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

func TestCheckGenerationCommon(t *testing.T) {
	fx := newFleetFixture(t, "")
	if st, msg := checkGenerationCommon(summarize(fx.results), 2); st != Pass || !strings.Contains(msg, "restorable: 312") {
		t.Errorf("healthy: %s %q", st, msg)
	}
	// The data node sees another content for both files.
	for i := range data(fx).GenerationFiles {
		data(fx).GenerationFiles[i].SHA256 = "different"
	}
	if st, msg := checkGenerationCommon(summarize(fx.results), 2); st != Fail {
		t.Errorf("differing content: %s %q", st, msg)
	}
	fx.results[0].Facts, fx.results[1].Facts = nil, nil
	if st, _ := checkGenerationCommon(summarize(fx.results), 2); st != Skip {
		t.Errorf("nothing read: %s", st)
	}
}

func TestCheckGenerationCoverage(t *testing.T) {
	ips := []string{"192.168.10.11", "192.168.10.12"}
	fx := newFleetFixture(t, "312")
	if st, msg := checkGenerationCoverage(fx.gen, fx.results, ips); st != Pass {
		t.Errorf("healthy: %s %q", st, msg)
	}
	if st, msg := checkGenerationCoverage(fx.gen, fx.results, ips[:1]); st != Fail || !strings.Contains(msg, "under 192.168.10.12") {
		t.Errorf("foreign ip: %s %q", st, msg)
	}
	for _, f := range []*Facts{core(fx), data(fx)} {
		f.PartDirs = removeItem(f.PartDirs, "192.168.10.12/mail/imap/2049")
	}
	if st, msg := checkGenerationCoverage(fx.gen, fx.results, ips); st != Fail || !strings.Contains(msg, "mail/imap/2049") {
		t.Errorf("no data dir: %s %q", st, msg)
	}
	if st, _ := checkGenerationCoverage(resolveGeneration("", summarize(fx.results)), fx.results, ips); st != Skip {
		t.Errorf("none chosen: %s", st)
	}
}
