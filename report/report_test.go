package report

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// hostile is what a compromised or broken node could send back.
const hostile = "\x1b[2J\x1b]0;pwned\x07<script>alert(1)</script> | `x` & \"q\" \r\u202e\x00 ]]>"

func sample() *Report {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	rc := 1
	return &Report{
		Schema: Schema, RunID: "20261128T100000Z-abcd", Command: "verify",
		StartedAt: t0, FinishedAt: t0.Add(5 * time.Second), Verdict: VerdictFail, ExitCode: 1,
		Inventory: Inventory{Path: "inventory.toml", SHA256: "0123456789abcdef0123", Architecture: "acme"},
		Nodes: []Node{
			{Name: "core", Address: "10.0.0.10", IP: "10.0.0.10", Reachable: true, Stage: 2,
				Checks: []Check{
					{ID: "backup.present", Status: "pass", Message: "/var/backups/bluemind is a directory", DurationMS: 4},
					{ID: "os.release", Status: "warn", Message: "nodes differ", DurationMS: 1},
					{ID: "bluemind.external_url", Status: "fail", Message: hostile, DurationMS: 2},
				},
				Restore: &Restore{Status: "failed", ExitCode: &rc, Steps: []Step{{Name: hostile, Status: "fail", StartedAt: t0, EndedAt: t0.Add(time.Second)}},
					Log: "logs/core.log", StartedAt: t0, EndedAt: t0.Add(2 * time.Second)}},
			{Name: "mail", Address: "10.0.0.11", IP: "10.0.0.11", Reachable: false, Stage: 1,
				Checks: []Check{{ID: "ssh.connect", Status: "fail", Message: "unreachable: connection refused"}, {ID: "backup.present", Status: "skip", Message: "node unreachable"}}},
		},
		ArchitectureChecks: []Check{{ID: "generation.common", Status: "pass", Message: "3 common generation(s)"}},
		PostOperations:     []PostOp{},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestWriteMarkdown_MatchesGoldenFile(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "sample.md", b.Bytes())
}

func TestWriteJUnit_MatchesGoldenFile(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "sample.junit.xml", b.Bytes())
}

func TestWriteJUnit_CountsFailuresAndSkipsPerSuite(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, sample()); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("junit.xml does not parse back: %v", err)
	}
	if got.Tests != 7 || got.Failures != 3 || got.Skipped != 1 {
		t.Errorf("totals tests=%d failures=%d skipped=%d, want 7, 3, 1", got.Tests, got.Failures, got.Skipped)
	}
	byName := map[string]junitSuite{}
	for _, s := range got.Suites {
		byName[s.Name] = s
	}
	if s := byName["core"]; s.Tests != 4 || s.Failures != 2 {
		t.Errorf("suite core: tests=%d failures=%d, want 4 checks+restore with 2 failures", s.Tests, s.Failures)
	}
	if s := byName["mail"]; s.Failures != 1 || s.Skipped != 1 {
		t.Errorf("suite mail: failures=%d skipped=%d, want 1 and 1", s.Failures, s.Skipped)
	}
}

// Every renderer must neutralise what a node sends: no raw escape sequence
// or control character, no live HTML.
func TestRenderers_EscapeHostileStrings(t *testing.T) {
	r := sample()
	for name, write := range map[string]func(*bytes.Buffer) error{
		"md":    func(b *bytes.Buffer) error { return WriteMarkdown(b, r) },
		"junit": func(b *bytes.Buffer) error { return WriteJUnit(b, r) },
		"json":  func(b *bytes.Buffer) error { return WriteJSON(b, r) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := b.String()
		bad := []string{"\x1b", "\x07", "\r", "\x00", "\u202e", "<script>"}
		if name == "json" {
			// report.json is data: JSON escapes control characters and
			// HTML; other characters are kept exactly for re-rendering.
			bad = []string{"\x1b", "\x07", "\r", "\x00", "<script>"}
		}
		for _, bad := range bad {
			if strings.Contains(out, bad) {
				t.Errorf("%s output contains %q", name, bad)
			}
		}
	}
}

func TestSanitizeText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text\twith tab\nand newline", "plain text\twith tab\nand newline"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"bell\x07", `bell\x07`},
		{"cr\rover", `cr\x0dover`},
		{"c1\u009b", `c1\x9b`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"bad utf8 \xff", "bad utf8 \uFFFD"},
	} {
		if got := SanitizeText(c.in); got != c.want {
			t.Errorf("SanitizeText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWriteDir_WritesEveryFilePrivately(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := WriteDir(dir, sample()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("report dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, f := range []string{FileJSON, FileJUnit, FileMD} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s not written: %v", f, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	back, err := ReadJSON(filepath.Join(dir, FileJSON))
	if err != nil {
		t.Fatal(err)
	}
	if back.Nodes[0].Checks[2].Message != hostile || back.ExitCode != 1 {
		t.Errorf("report.json does not round-trip: %+v", back.Nodes[0].Checks[2])
	}
	if _, err := os.Stat(filepath.Join(dir, DirLogs)); err != nil {
		t.Errorf("logs/ not created: %v", err)
	}
}

func TestReadJSON_RefusesAnotherSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(p, []byte(`{"schema":"other/v9"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(p); err == nil || !strings.Contains(err.Error(), "other/v9") {
		t.Errorf("ReadJSON of another schema: err = %v", err)
	}
}

func TestWriteHTML_IsSelfContainedAndEscaped(t *testing.T) {
	r := sample()
	t0 := r.StartedAt
	r.Command = "restore"
	r.Nodes[0].Restore.Steps = append(r.Nodes[0].Restore.Steps, Step{Name: "Starting BlueMind services", Status: "ok", StartedAt: t0.Add(time.Second), EndedAt: t0.Add(3 * time.Second)})
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{`id="verdict"`, `id="nodes"`, `id="timeline"`, "<rect class=\"fail\"", "Manual checklist", `href="logs/core.log"`} {
		if !strings.Contains(out, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "\x1b", "\u202e", "<link", "src=", "@import", "url(", "https://"} {
		if strings.Contains(out, bad) {
			t.Errorf("report.html contains %q (not self-contained or not escaped)", bad)
		}
	}
	if !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the hostile message is not shown escaped")
	}
}
