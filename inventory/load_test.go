package inventory

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// arch is a valid [architecture] table, three lines long, that tests prepend.
const arch = `[architecture]
name = "t"
external_url = "mail.t.example"
bluemind_version = "4.8.2"
`

func mustParse(t *testing.T, src string) *Inventory {
	t.Helper()
	inv, err := Parse("inv.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n--- input:\n%s", err, src)
	}
	return inv
}

func problems(t *testing.T, src string) []Problem {
	t.Helper()
	inv, err := Parse("inv.toml", []byte(src))
	if err == nil {
		t.Fatalf("Parse accepted an invalid inventory: %+v\n--- input:\n%s", inv, src)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse error is %T, want *Error: %v", err, err)
	}
	if len(e.Problems) == 0 {
		t.Fatal("*Error without problems")
	}
	return e.Problems
}

func TestLoad_ExampleInventoryResolvesEveryKey(t *testing.T) {
	inv, err := Load("../inventory.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.SHA256) != 64 || inv.Path != "../inventory.example.toml" {
		t.Errorf("Path, SHA256 = %q, %q", inv.Path, inv.SHA256)
	}
	wantArch := Architecture{
		Name: "acme-prod", ExternalURL: "mail.acme.example", BlueMindVersion: "4.8.2",
		OS: "ubuntu 18.04", RestoreScript: DefaultRestoreScript, Python: DefaultPython, RTO: 4 * time.Hour,
	}
	if inv.Architecture != wantArch {
		t.Errorf("Architecture = %+v\nwant %+v", inv.Architecture, wantArch)
	}
	sshDefaults := SSH{
		User: "root", Port: 22, IdentityFiles: []string{"~/.ssh/id_ed25519"},
		KnownHosts: []string{"~/.ssh/known_hosts"}, HostKeyPolicy: HostKeyStrict,
		Jump: "admin@192.0.2.1:2222", SSHConfig: "~/.ssh/config", Become: BecomeNone,
		ConnectTimeout: 10 * time.Second, Keepalive: 15 * time.Second,
	}
	if !reflect.DeepEqual(inv.SSH, sshDefaults) {
		t.Errorf("SSH = %+v\nwant %+v", inv.SSH, sshDefaults)
	}
	want := []Node{{
		Name: "es1", IP: netip.MustParseAddr("192.0.2.11"), Address: "192.0.2.11",
		Tags: []string{"bm/es"}, Stage: 1,
		StepTimeouts: map[string]time.Duration{"Waiting for ES cluster is up": 45 * time.Minute},
		SSH:          sshDefaults, RestoreScript: DefaultRestoreScript, Python: DefaultPython, Line: 29,
	}, {
		Name: "mail1", IP: netip.MustParseAddr("192.0.2.12"), Address: "mail1.acme.example",
		Tags: []string{"mail/imap", "mail/archive"}, Stage: 1,
		HostKey: "SHA256:H5vx0nyeR0BghJgdhKeHVRSzUp+DJQLC6Ql01btAcgQ",
		SSH: SSH{
			User: "bmadmin", Port: 2022, IdentityFiles: []string{"~/.ssh/acme_mail_ed25519"},
			KnownHosts:    []string{"~/.ssh/known_hosts", "~/.ssh/acme_known_hosts"},
			HostKeyPolicy: HostKeyPinned, Jump: "", SSHConfig: "", Become: BecomeSudo,
			ConnectTimeout: 20 * time.Second, Keepalive: 30 * time.Second,
		},
		RestoreScript: "/opt/bluemind/bm-pra-restore.py", Python: "/usr/bin/python2.7", Line: 37,
	}, {
		Name: "core", IP: netip.MustParseAddr("192.0.2.10"), Address: "bm-core.acme.example",
		Core: true, Tags: []string{"bm/core", "bm/pgsql"}, Stage: 2,
		SSH: sshDefaults, RestoreScript: DefaultRestoreScript, Python: DefaultPython, Line: 58,
	}}
	if len(inv.Nodes) != len(want) {
		t.Fatalf("%d nodes, want %d", len(inv.Nodes), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(inv.Nodes[i], want[i]) {
			t.Errorf("node %d = %+v\nwant     %+v", i, inv.Nodes[i], want[i])
		}
	}
	if c := inv.Core(); c.Name != "core" {
		t.Errorf("Core() = %q", c.Name)
	}
}

func TestLoad_MissingFileIsNotAnInventoryError(t *testing.T) {
	_, err := Load(t.TempDir() + "/absent.toml")
	var e *Error
	if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "read inventory") {
		t.Fatalf("err = %v", err)
	}
}

func TestParse_AppliesSpecDefaults(t *testing.T) {
	inv := mustParse(t, arch+`
[[nodes]]
name = "a"
ip = "10.0.0.1"
[[nodes]]
name = "c"
ip = "10.0.0.2"
core = true
`)
	want := SSH{
		User: DefaultUser, Port: DefaultPort, KnownHosts: []string{"~/.ssh/known_hosts"},
		HostKeyPolicy: HostKeyStrict, SSHConfig: DefaultSSHConfig,
		ConnectTimeout: DefaultConnectTimeout, Keepalive: DefaultKeepalive,
	}
	if !reflect.DeepEqual(inv.SSH, want) {
		t.Errorf("SSH = %+v\nwant %+v", inv.SSH, want)
	}
	for _, n := range inv.Nodes {
		if !reflect.DeepEqual(n.SSH, want) {
			t.Errorf("node %s SSH = %+v", n.Name, n.SSH)
		}
		if n.Address != n.IP.String() || n.RestoreScript != DefaultRestoreScript || n.Python != DefaultPython {
			t.Errorf("node %s = %+v", n.Name, n)
		}
	}
	if inv.Nodes[0].Stage != 1 || inv.Nodes[1].Stage != 2 {
		t.Errorf("stages = %d, %d; want 1, 2", inv.Nodes[0].Stage, inv.Nodes[1].Stage)
	}
	if inv.Nodes[0].Line != 6 || inv.Nodes[1].Line != 9 {
		t.Errorf("lines = %d, %d; want 6, 9", inv.Nodes[0].Line, inv.Nodes[1].Line)
	}
}

func TestParse_EmptySSHConfigDisablesItButAbsentKeepsDefault(t *testing.T) {
	inv := mustParse(t, arch+`
[ssh]
ssh_config = ""
[[nodes]]
name = "a"
ip = "10.0.0.1"
ssh_config = "/etc/prapush/ssh_config"
[[nodes]]
name = "c"
ip = "10.0.0.2"
core = true
`)
	if inv.SSH.SSHConfig != "" || inv.Nodes[0].SSH.SSHConfig != "/etc/prapush/ssh_config" || inv.Nodes[1].SSH.SSHConfig != "" {
		t.Errorf("ssh_config = %q, %q, %q", inv.SSH.SSHConfig, inv.Nodes[0].SSH.SSHConfig, inv.Nodes[1].SSH.SSHConfig)
	}
}

func TestParse_NodeOverridesOnlyTouchThatNode(t *testing.T) {
	inv := mustParse(t, arch+`
restore_script = "/srv/pra.py"
[ssh]
user = "ops"
become = "sudo"
identity_files = ["~/.ssh/a"]
[[nodes]]
name = "a"
ip = "10.0.0.1"
user = "root"
become = ""
identity_files = []
jump = "bastion,ops@192.0.2.1:2222,[2001:db8::1]:22"
python = "/usr/bin/python2"
[[nodes]]
name = "c"
ip = "10.0.0.2"
core = true
`)
	a, c := inv.Nodes[0], inv.Nodes[1]
	if a.SSH.User != "root" || a.SSH.Become != BecomeNone || len(a.SSH.IdentityFiles) != 0 ||
		a.SSH.Jump != "bastion,ops@192.0.2.1:2222,[2001:db8::1]:22" || a.Python != "/usr/bin/python2" || a.RestoreScript != "/srv/pra.py" {
		t.Errorf("overridden node = %+v", a)
	}
	if c.SSH.User != "ops" || c.SSH.Become != BecomeSudo || !reflect.DeepEqual(c.SSH.IdentityFiles, []string{"~/.ssh/a"}) ||
		c.SSH.Jump != "" || c.Python != DefaultPython || c.RestoreScript != "/srv/pra.py" {
		t.Errorf("other node = %+v", c)
	}
}

func TestParse_ResolvesStages(t *testing.T) {
	tests := []struct {
		name  string
		nodes string
		want  map[string]int
	}{{
		name:  "core alone after the default stage",
		nodes: `{name="a", ip="10.0.0.1"}, {name="b", ip="10.0.0.2"}, {name="c", ip="10.0.0.3", core=true}`,
		want:  map[string]int{"a": 1, "b": 1, "c": 2},
	}, {
		name:  "core after the highest explicit stage",
		nodes: `{name="c", ip="10.0.0.3", core=true}, {name="a", ip="10.0.0.1", stage=3}, {name="b", ip="10.0.0.2"}`,
		want:  map[string]int{"a": 3, "b": 1, "c": 4},
	}, {
		name:  "explicit core stage kept",
		nodes: `{name="a", ip="10.0.0.1", stage=2}, {name="c", ip="10.0.0.3", core=true, stage=7}`,
		want:  map[string]int{"a": 2, "c": 7},
	}, {
		name:  "core alone",
		nodes: `{name="c", ip="10.0.0.3", core=true}`,
		want:  map[string]int{"c": 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, "nodes = ["+tt.nodes+"]\n"+arch)
			got := map[string]int{}
			for _, n := range inv.Nodes {
				got[n.Name] = n.Stage
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stages = %v, want %v", got, tt.want)
			}
		})
	}
}

// doc returns a document: the valid [architecture] table, then nodes.
func doc(nodes ...string) string {
	return arch + strings.Join(nodes, "")
}

const (
	nodeA = "[[nodes]]\nname = \"a\"\nip = \"10.0.0.1\"\n"                 // lines 5-7
	core  = "[[nodes]]\nname = \"core\"\nip = \"10.0.0.9\"\ncore = true\n" // 4 lines
)

func TestParse_ReportsEachProblemWithFileLineAndKey(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		key  string
		msg  string
	}{
		{"unknown top-level key", "colour = 1\n" + doc(nodeA, core), 1, "colour", "unknown key"},
		{"unknown architecture key", strings.Replace(doc(nodeA, core), "[architecture]\n", "[architecture]\ndatacenter = \"paris\"\n", 1), 2, "architecture.datacenter", "unknown key"},
		{"missing architecture name", "[architecture]\nexternal_url = \"x\"\nbluemind_version = \"4\"\n" + nodeA + core, 1, "architecture.name", "required key is missing"},
		{"empty external_url", strings.Replace(doc(nodeA, core), `"mail.t.example"`, `""`, 1), 3, "architecture.external_url", "must not be empty"},
		{"no architecture at all", nodeA + core, 1, "architecture.bluemind_version", "required key is missing"},
		{"wrong type", strings.Replace(doc(nodeA, core), `"4.8.2"`, `4.8`, 1), 4, "architecture.bluemind_version", "must be a string, not a float"},
		{"bad rto", arch + "rto = \"4 hours\"\n" + nodeA + core, 5, "architecture.rto", "invalid duration"},
		{"relative restore_script", arch + "restore_script = \"pra.py\"\n" + nodeA + core, 5, "architecture.restore_script", "absolute path"},
		{"unknown ssh key", doc(nodeA, core) + "[ssh]\nproxy_command = \"nc\"\n", 13, "ssh.proxy_command", "unknown key"},
		{"ssh port out of range", doc(nodeA, core) + "[ssh]\nport = 70000\n", 13, "ssh.port", "out of range"},
		{"ssh port as string", doc(nodeA, core) + "[ssh]\nport = \"22\"\n", 13, "ssh.port", "must be an integer, not a string"},
		{"zero connect_timeout", doc(nodeA, core) + "[ssh]\nconnect_timeout = \"0s\"\n", 13, "ssh.connect_timeout", "must be positive"},
		{"negative keepalive", doc(nodeA, core) + "[ssh]\nkeepalive = \"-1s\"\n", 13, "ssh.keepalive", "must be positive"},
		{"bad become", doc(nodeA, core) + "[ssh]\nbecome = \"su\"\n", 13, "ssh.become", `must be "" or "sudo"`},
		{"bad policy", doc(nodeA, core) + "[ssh]\nhost_key_policy = \"tofu\"\n", 13, "ssh.host_key_policy", "strict"},
		{"bad jump", doc(nodeA, core) + "[ssh]\njump = \"ops@bastion:0\"\n", 13, "ssh.jump", "invalid jump host"},
		{"empty jump hop", doc(nodeA, core) + "[ssh]\njump = \"a,,b\"\n", 13, "ssh.jump", "empty hop"},
		{"empty identity file", doc(nodeA, core) + "[ssh]\nidentity_files = [\n  \"~/.ssh/a\",\n  \"\",\n]\n", 15, "ssh.identity_files[1]", "must not be empty"},
		{"identity_files not an array", doc(nodeA, core) + "[ssh]\nidentity_files = \"~/.ssh/a\"\n", 13, "ssh.identity_files", "must be an array of strings"},
		{"unknown node key", doc(nodeA+"colour = \"red\"\n", core), 8, "nodes[0].colour", "unknown key"},
		{"missing node name", doc("[[nodes]]\nip = \"10.0.0.1\"\n", core), 5, "nodes[0].name", "required key is missing"},
		{"missing node ip", doc("[[nodes]]\nname = \"a\"\n", core), 5, "nodes[0].ip", "required key is missing"},
		{"name naming a path", doc(strings.Replace(nodeA, `"a"`, `"../a"`, 1), core), 6, "nodes[0].name", "invalid name"},
		{"name dot dot", doc(strings.Replace(nodeA, `"a"`, `".."`, 1), core), 6, "nodes[0].name", "invalid name"},
		{"ipv6", doc(strings.Replace(nodeA, `"10.0.0.1"`, `"2001:db8::1"`, 1), core), 7, "nodes[0].ip", "invalid ip"},
		{"ip with port", doc(strings.Replace(nodeA, `"10.0.0.1"`, `"10.0.0.1:22"`, 1), core), 7, "nodes[0].ip", "invalid ip"},
		{"duplicate name", doc(nodeA, core, strings.Replace(nodeA, "10.0.0.1", "10.0.0.2", 1)), 13, "nodes[2].name", `duplicate name "a" (also at line 5)`},
		{"duplicate name differing in case", doc(nodeA, core, strings.Replace(strings.Replace(nodeA, "10.0.0.1", "10.0.0.2", 1), `"a"`, `"A"`, 1)), 13, "nodes[2].name", `duplicate name "a" (also at line 5)`},
		{"unspecified ip", doc(strings.Replace(nodeA, `"10.0.0.1"`, `"0.0.0.0"`, 1), core), 7, "nodes[0].ip", "cannot be a node's address"},
		{"duplicate ip", doc(nodeA, core, strings.Replace(nodeA, `"a"`, `"b"`, 1)), 14, "nodes[2].ip", "duplicate ip 10.0.0.1"},
		{"no nodes", arch, 1, "nodes", "no nodes"},
		{"nodes not array of tables", arch + "[nodes]\nname = \"a\"\n", 5, "nodes", "must be an array of tables"},
		{"no core", doc(nodeA), 1, "nodes", "no node has core = true"},
		{"two cores", doc(core, strings.Replace(strings.Replace(core, "core\"", "core2\"", 1), "10.0.0.9", "10.0.0.8", 1)), 12, "nodes[1].core", "several core nodes"},
		{"core not a bool", doc(nodeA, strings.Replace(core, "core = true", "core = \"yes\"", 1)), 11, "nodes[1].core", "must be a boolean"},
		{"core shares a stage", doc(nodeA+"stage = 2\n", core+"stage = 2\n"), 13, "nodes[1].stage", "alone in its stage"},
		{"core before others", doc(nodeA+"stage = 3\n", core+"stage = 2\n"), 13, "nodes[1].stage", "restored last"},
		{"stage zero", doc(nodeA+"stage = 0\n", core), 8, "nodes[0].stage", "out of range"},
		{"pinned without host_key", doc(nodeA+"host_key_policy = \"pinned\"\n", core), 5, "nodes[0].host_key", "required with host_key_policy"},
		{"malformed host_key", doc(nodeA+"host_key_policy = \"pinned\"\nhost_key = \"SHA256:abc\"\n", core), 9, "nodes[0].host_key", "not a SHA256 fingerprint"},
		{"md5 host_key", doc(nodeA+"host_key_policy = \"pinned\"\nhost_key = \"MD5:aa:bb\"\n", core), 9, "nodes[0].host_key", "SHA256:<base64>"},
		{"host_key without pinned", doc(nodeA+"host_key = \"SHA256:H5vx0nyeR0BghJgdhKeHVRSzUp+DJQLC6Ql01btAcgQ\"\n", core), 8, "nodes[0].host_key", "only used with"},
		{"bad step timeout", doc(nodeA+"step_timeouts = { \"Waiting for ES cluster is up\" = \"forever\" }\n", core), 8, `nodes[0].step_timeouts."Waiting for ES cluster is up"`, "invalid duration"},
		{"node port override", doc(nodeA+"port = 0\n", core), 8, "nodes[0].port", "out of range"},
		{"node override wrong type", doc(nodeA, core+"become = true\n"), 12, "nodes[1].become", "must be a string, not a boolean"},
		{"empty tag", doc(nodeA+"tags = [\"bm/es\", \" \"]\n", core), 8, "nodes[0].tags[1]", "must not be empty"},
		{"address with space", doc(nodeA+"address = \"a b\"\n", core), 8, "nodes[0].address", "invalid address"},
		{"inline node not a table", "nodes = [\n  \"a\",\n  {name = \"c\", ip = \"10.0.0.2\", core = true, colour = 1},\n]\n" + arch, 2, "nodes[0]", "must be a table, not a string"},
		{"inline node after a non-table", "nodes = [\n  \"a\",\n  {name = \"c\", ip = \"10.0.0.2\", core = true, colour = 1},\n]\n" + arch, 3, "nodes[1].colour", "unknown key"},
		{"inline node table key", "nodes = [\n  {name = \"a\", ip = \"10.0.0.1\"},\n  {name = \"c\", ip = \"10.0.0.2\", core = true, colour = 1},\n]\n" + arch, 3, "nodes[1].colour", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problems(t, tt.src)
			var found bool
			for _, p := range ps {
				if p.Key == tt.key && p.Line == tt.line && strings.Contains(p.Msg, tt.msg) {
					found = true
					prefix := fmt.Sprintf("inv.toml:%d: %s: ", tt.line, tt.key)
					if !strings.HasPrefix(p.Error(), prefix) {
						t.Errorf("Error() = %q, want prefix %q", p.Error(), prefix)
					}
				}
			}
			if !found {
				t.Errorf("no problem at line %d, key %s, containing %q; got:\n%s", tt.line, tt.key, tt.msg, (&Error{ps}).Error())
			}
		})
	}
}

func TestParse_ReportsEveryProblemAtOnceInLineOrder(t *testing.T) {
	src := `[architecture]
name = "t"
bluemind_version = 4
extra = true

[ssh]
port = 0

[[nodes]]
name = "a/b"
ip = "10.0.0.300"

[[nodes]]
name = "c"
ip = "10.0.0.2"
core = true
stage = 1

[[nodes]]
name = "d"
ip = "10.0.0.2"
`
	ps := problems(t, src)
	want := []string{
		"inv.toml:1: architecture.external_url: required key is missing",
		"inv.toml:3: architecture.bluemind_version: must be a string, not an integer",
		"inv.toml:4: architecture.extra: unknown key",
		"inv.toml:7: ssh.port: port 0 out of range 1..65535",
		`inv.toml:10: nodes[0].name: invalid name "a/b"`,
		`inv.toml:11: nodes[0].ip: invalid ip "10.0.0.300"`,
		"inv.toml:17: nodes[1].stage: the core node must be alone in its stage: stage 1 also holds nodes[0] (line 9)",
		`inv.toml:21: nodes[2].ip: duplicate ip 10.0.0.2 (also node "c", line 13)`,
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(ps), len(want), (&Error{ps}).Error())
	}
	for i, p := range ps {
		if !strings.HasPrefix(p.Error(), want[i]) {
			t.Errorf("problem %d = %q\nwant prefix  %q", i, p.Error(), want[i])
		}
	}
	joined := (&Error{ps}).Error()
	if strings.Count(joined, "\n") != len(want)-1 {
		t.Errorf("Error() does not hold one problem per line:\n%s", joined)
	}
}

func TestParse_SyntaxErrorNamesLineAndColumn(t *testing.T) {
	ps := problems(t, arch+"[[nodes]]\nname = \"a\nip = \"10.0.0.1\"\n")
	if len(ps) != 1 {
		t.Fatalf("problems = %v", ps)
	}
	p := ps[0]
	if p.Line != 6 || p.Col < 1 || !strings.HasPrefix(p.Error(), fmt.Sprintf("inv.toml:6:%d: ", p.Col)) {
		t.Errorf("syntax problem = %+v, Error() = %q", p, p.Error())
	}
}

func TestCheckJump_AcceptsProxyJumpSyntaxOnly(t *testing.T) {
	valid := []string{
		"", "bastion", "bastion.example", "ops@bastion", "ops@bastion:2222", "192.0.2.1:22",
		"[2001:db8::1]:22", "[2001:db8::1]", "ops@[2001:db8::1]:2222", "a,ops@b:22,c",
	}
	for _, j := range valid {
		if err := checkJump(j); err != nil {
			t.Errorf("checkJump(%q) = %v, want nil", j, err)
		}
	}
	invalid := []string{
		",", "a,", "@bastion", "ops@", "bastion:", "bastion:0", "bastion:65536", "bastion:ssh",
		"2001:db8::1", "a b", "ops@bastion/x", "-oProxyCommand=x", "ops@-x", "a@b@c", "[::1]:", "bastion:22:1",
	}
	for _, j := range invalid {
		if err := checkJump(j); err == nil {
			t.Errorf("checkJump(%q) = nil, want an error", j)
		}
	}
}

func TestParse_CRLFAndBOMKeepLines(t *testing.T) {
	src := "\xef\xbb\xbf" + strings.ReplaceAll(doc(nodeA, core+"colour = 1\n"), "\n", "\r\n")
	ps := problems(t, src)
	if len(ps) != 1 || ps[0].Line != 12 || ps[0].Key != "nodes[1].colour" {
		t.Errorf("problems = %v", ps)
	}
}
