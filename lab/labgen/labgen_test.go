package labgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixture is a copy of shared/fixtures/generation-312.json, the exact format.
const fixture = "testdata/generation-312.json"

// keyPaths lists every object key of a JSON document in document order,
// as "path.key", so that two documents can be compared in structure.
func keyPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	var out []string
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{':
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					out = append(out, path+"."+k.(string))
					if err := walk(path + "." + k.(string)); err != nil {
						return err
					}
				}
			case '[':
				for dec.More() {
					if err := walk(path + "[]"); err != nil {
						return err
					}
				}
			}
			_, err := dec.Token() // closing delimiter
			return err
		}
		return nil
	}
	if err := walk(""); err != nil {
		t.Fatalf("walk json: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("trailing data after the JSON document: %v", err)
	}
	return out
}

func readFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGeneration_RoundTripsTheFixtureByteForByte(t *testing.T) {
	want := readFixture(t)
	var g Generation
	if err := json.Unmarshal(want, &g); err != nil {
		t.Fatal(err)
	}
	got, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("re-marshalled fixture differs:\n got %s\nwant %s", got, want)
	}
}

func TestGenerate_FilesHaveTheFixtureStructure(t *testing.T) {
	want := keyPaths(t, readFixture(t))
	// The fixture has 9 parts; compare the header and the first part's keys.
	wantPart := partKeys(want)
	out := t.TempDir()
	for _, preset := range Presets() {
		t.Run(preset, func(t *testing.T) {
			dir := filepath.Join(out, preset)
			res, err := Generate(dir, preset, Options{ViewOut: dir + "-view"})
			if err != nil {
				t.Fatal(err)
			}
			for _, gen := range res.Generations {
				b, err := os.ReadFile(filepath.Join(dir, gen.FileName()))
				if err != nil {
					t.Fatal(err)
				}
				if bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 0 {
					t.Errorf("%s: not a single line without trailing newline", gen.FileName())
				}
				got := keyPaths(t, b)
				if !slices.Equal(header(got), header(want)) {
					t.Errorf("%s: header keys %v, want %v", gen.FileName(), header(got), header(want))
				}
				if gp := partKeys(got); !slices.Equal(gp, wantPart) {
					t.Errorf("%s: part keys %v, want %v", gen.FileName(), gp, wantPart)
				}
			}
		})
	}
}

// header returns the keys outside the parts array.
func header(paths []string) []string {
	return slices.DeleteFunc(slices.Clone(paths), func(p string) bool { return strings.HasPrefix(p, ".parts[]") })
}

// partKeys returns the keys of the first part.
func partKeys(paths []string) []string {
	var out []string
	for _, p := range paths {
		if strings.HasPrefix(p, ".parts[].") {
			if slices.Contains(out, p) {
				break
			}
			out = append(out, p)
		}
	}
	return out
}

func readGen(t *testing.T, path string) Generation {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g Generation
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return g
}

func TestGenerate_OkPresetIsCompleteAndConsistent(t *testing.T) {
	dir := t.TempDir()
	res, err := Generate(dir, "ok", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Generations) < 3 {
		t.Fatalf("want several generations, got %d", len(res.Generations))
	}
	nodes := DefaultNodes()
	ipByUID := map[string]string{"bm-master": nodes[0].IP, derivedUID("mail"): nodes[1].IP, derivedUID("files"): nodes[2].IP}
	seenIDs := map[int]bool{}
	versions := map[string]bool{}
	var lastTime int64
	for _, gen := range res.Generations {
		g := readGen(t, filepath.Join(dir, gen.FileName()))
		versions[g.BlueMind.DisplayName] = true
		if g.ProtectionTime <= lastTime {
			t.Errorf("generation %d: protectionTime not after the previous one", g.ID)
		}
		lastTime = g.ProtectionTime
		prevServer, servers := "", []string{}
		for _, p := range g.Parts {
			if seenIDs[p.ID] {
				t.Errorf("part id %d reused: ids come from one global counter", p.ID)
			}
			seenIDs[p.ID] = true
			if p.GenerationID != g.ID || p.Valid != "VALID" || p.End == nil || *p.End <= p.Begin || p.Begin < g.ProtectionTime {
				t.Errorf("generation %d part %d is not a finished VALID part: %+v", g.ID, p.ID, p)
			}
			if p.Server != prevServer {
				if slices.Contains(servers, p.Server) {
					t.Errorf("generation %d: parts of server %s are not grouped", g.ID, p.Server)
				}
				servers = append(servers, p.Server)
				prevServer = p.Server
			}
			ip, ok := ipByUID[p.Server]
			if !ok {
				t.Fatalf("part %d: unknown server uid %q", p.ID, p.Server)
			}
			partDir := filepath.Join(dir, "dp_spool/rsync", ip, p.Tag, fmt.Sprint(p.ID))
			if fi, err := os.Stat(partDir); err != nil || !fi.IsDir() {
				t.Errorf("part %d: directory %s missing", p.ID, partDir)
			}
		}
		if servers[0] != "bm-master" {
			t.Errorf("generation %d: the core's parts must come first, got %v", g.ID, servers)
		}
	}
	if len(versions) < 2 {
		t.Errorf("want generations of different versions, got %v", versions)
	}
	for _, d := range []string{"work", "temp"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s/ missing", d)
		}
	}
	ini, err := os.ReadFile(filepath.Join(dir, "dp_spool/rsync/172.29.77.12/bm/conf/2025/var/backups/bluemind/work/conf/etc/bm/bm.ini"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"external-url = mail.lab.example\n", "host = 172.29.77.11\n", "hz-member-address = 172.29.77.11\n"} {
		if !strings.Contains(string(ini), want) {
			t.Errorf("bm.ini lacks %q:\n%s", want, ini)
		}
	}
}

func TestGenerate_PresetFaults(t *testing.T) {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	cases := []struct {
		preset string
		check  func(t *testing.T, dir string, res *Result)
	}{
		{"no-generations", func(t *testing.T, dir string, _ *Result) {
			if m, _ := filepath.Glob(filepath.Join(dir, "generation-*.json")); len(m) != 0 {
				t.Errorf("generation files written: %v", m)
			}
			if !exists(filepath.Join(dir, "dp_spool/rsync/172.29.77.11/bm/conf")) {
				t.Error("part trees missing")
			}
		}},
		{"no-host-dir", func(t *testing.T, dir string, res *Result) {
			if res.Target != "mail" || exists(filepath.Join(dir, "dp_spool/rsync/172.29.77.12")) {
				t.Errorf("target %s: its host dir must be absent", res.Target)
			}
			if !exists(filepath.Join(dir, "dp_spool/rsync/172.29.77.13")) {
				t.Error("other nodes' host dirs must stay")
			}
		}},
		{"bad-json", func(t *testing.T, dir string, _ *Result) {
			b, _ := os.ReadFile(filepath.Join(dir, "generation-313.json"))
			if json.Valid(b) || len(b) == 0 {
				t.Errorf("generation-313.json must be invalid JSON: %q", b)
			}
		}},
		{"crash-json", func(t *testing.T, dir string, _ *Result) {
			b, _ := os.ReadFile(filepath.Join(dir, "generation-313.json"))
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if _, ok := m["protectionTime"]; ok {
				t.Error("protectionTime present")
			}
		}},
		{"dup-protectionTime", func(t *testing.T, dir string, _ *Result) {
			a, b := readGen(t, filepath.Join(dir, "generation-312.json")), readGen(t, filepath.Join(dir, "generation-313.json"))
			if a.ProtectionTime != b.ProtectionTime {
				t.Error("protectionTime differs")
			}
		}},
		{"missing-es-part", func(t *testing.T, dir string, _ *Result) {
			for _, p := range readGen(t, filepath.Join(dir, "generation-312.json")).Parts {
				if p.Tag == "bm/es" {
					t.Errorf("bm/es part %d present", p.ID)
				}
			}
		}},
		{"missing-conf-part", func(t *testing.T, dir string, _ *Result) {
			n := 0
			for _, p := range readGen(t, filepath.Join(dir, "generation-312.json")).Parts {
				if p.Tag == "bm/conf" {
					n++
					if p.Server == derivedUID("mail") {
						t.Error("target's bm/conf part present")
					}
				}
			}
			if n != 2 {
				t.Errorf("want the 2 other nodes' bm/conf parts, got %d", n)
			}
		}},
		{"incomplete-generation", func(t *testing.T, dir string, _ *Result) {
			g := readGen(t, filepath.Join(dir, "generation-312.json"))
			last := g.Parts[len(g.Parts)-1]
			if last.End != nil || last.Size != 0 || last.Valid != "UNKNOWN" {
				t.Errorf("last part not unfinished: %+v", last)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "generation-312.json"))
			if !bytes.Contains(b, []byte(`"end":null,"size":0`)) {
				t.Error(`"end":null not written`)
			}
		}},
		{"loopback-dir", func(t *testing.T, dir string, _ *Result) {
			if m, _ := filepath.Glob(filepath.Join(dir, "dp_spool/rsync/127.0.0.1/bm/conf/*/var/backups/bluemind/work/conf/etc/bm/bm.ini")); len(m) != 1 {
				t.Errorf("127.0.0.1 bm/conf part: %v", m)
			}
		}},
		{"huge-parts", func(t *testing.T, dir string, _ *Result) {
			huge := map[string]bool{}
			for _, p := range readGen(t, filepath.Join(dir, "generation-312.json")).Parts {
				if p.Size == hugePartMB {
					if p.Server != derivedUID("mail") {
						t.Errorf("part %d of %s is huge: only the target's are", p.ID, p.Server)
					}
					huge[p.Tag] = true
				}
			}
			if !huge["mail/imap"] || !huge["bm/pgsql-data"] || huge["bm/conf"] {
				t.Errorf("want mail's data parts huge, its bm/conf not: %v", huge)
			}
			for _, p := range readGen(t, filepath.Join(dir, "generation-311.json")).Parts {
				if p.Size == hugePartMB {
					t.Errorf("older generation part %d is huge", p.ID)
				}
			}
		}},
		{"stale-view", func(t *testing.T, dir string, res *Result) {
			view := dir + "-view"
			if exists(filepath.Join(view, "generation-312.json")) || !exists(filepath.Join(dir, "generation-312.json")) {
				t.Error("the view must lack the newest generation, the store must have it")
			}
			a, _ := os.ReadFile(filepath.Join(dir, "generation-311.json"))
			b, _ := os.ReadFile(filepath.Join(view, "generation-311.json"))
			if len(b) == 0 || bytes.Equal(a, b) {
				t.Error("the view's older generation files must exist and differ")
			}
			if !exists(filepath.Join(view, "dp_spool/rsync/172.29.77.12/bm/conf")) || len(res.View) != 2 {
				t.Error("the view lacks the part trees or generations")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.preset, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			res, err := Generate(dir, c.preset, Options{ViewOut: dir + "-view"})
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, dir, res)
		})
	}
}

func TestGenerate_RejectsUnknownPresetAndStaleViewWithoutView(t *testing.T) {
	if _, err := Generate(t.TempDir(), "nope", Options{}); err == nil {
		t.Error("unknown preset accepted")
	}
	if _, err := Generate(t.TempDir(), "stale-view", Options{}); err == nil {
		t.Error("stale-view without ViewOut accepted")
	}
}

func TestParseNodes_ReadsTheFlagSyntax(t *testing.T) {
	n, err := ParseNodes("core=10.0.0.1:bm/core+bm/es, data=10.0.0.2:mail/imap")
	if err != nil {
		t.Fatal(err)
	}
	if len(n) != 2 || n[0].Name != "core" || n[1].IP != "10.0.0.2" || !slices.Equal(n[0].Tags, []string{"bm/core", "bm/es"}) || !n[0].Core() || n[1].Core() {
		t.Fatalf("got %+v", n)
	}
	if _, err := ParseNodes("broken"); err == nil {
		t.Error("bad syntax accepted")
	}
}
