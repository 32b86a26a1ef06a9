package tasks

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prapush/prapush/internal/testenv"
)

func TestParseGeneration_Fixture(t *testing.T) {
	g, kind, err := ParseGeneration(fixture312(t))
	if err != nil || kind != GenerationOK {
		t.Fatalf("kind %v err %v", kind, err)
	}
	if g.ID != 312 || g.ProtectionTime != 1647291602417 || g.DisplayName != "4.8.2" || len(g.Parts) != 9 {
		t.Errorf("got %+v", g)
	}
	if p := g.Parts[8]; p.ID != 2049 || p.Tag != "mail/imap" || p.SizeMB != 131877 || p.End == nil || !p.Finished() {
		t.Errorf("last part %+v", p)
	}
	if !g.Restorable() || g.TotalSizeMB() != 2+14+2210+5804+133+48212+1+9120+131877 {
		t.Errorf("restorable %v size %d", g.Restorable(), g.TotalSizeMB())
	}
}

func TestParseGeneration_KindsAsThePython2Script(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want GenerationKind
	}{
		{"compact", `{"protectionTime":1,"withErrors":false,"withWarnings":false,"blueMind":{"displayName":"x"}}`, GenerationOK},
		{"trailing newline", "{\"protectionTime\":1,\"withErrors\":false,\"withWarnings\":false,\"blueMind\":{\"displayName\":\"x\"}}\n", GenerationOK},
		{"empty file", ``, GenerationIgnored},
		{"truncated write", `{"id":3,"protectionTime":1,"blue`, GenerationIgnored},
		{"extra data", `{"protectionTime":1,"withErrors":false,"withWarnings":false,"blueMind":{"displayName":"x"}} {}`, GenerationIgnored},
		{"invalid utf-8", "{\"protectionTime\":1,\"withErrors\":false,\"withWarnings\":false,\"blueMind\":{\"displayName\":\"\xff\"}}", GenerationIgnored},
		{"bom", "\xef\xbb\xbf{}", GenerationIgnored},
		{"no protectionTime", `{"withErrors":false,"withWarnings":false,"blueMind":{"displayName":"x"}}`, GenerationCrash},
		{"no withErrors", `{"protectionTime":1,"withWarnings":false,"blueMind":{"displayName":"x"}}`, GenerationCrash},
		{"no displayName", `{"protectionTime":1,"withErrors":false,"withWarnings":false,"blueMind":{}}`, GenerationCrash},
		{"no blueMind", `{"protectionTime":1,"withErrors":false,"withWarnings":false}`, GenerationCrash},
		{"array", `[1,2]`, GenerationCrash},
		{"string protectionTime", `{"protectionTime":"1","withErrors":false,"withWarnings":false,"blueMind":{"displayName":"x"}}`, GenerationCrash},
		{"withWarnings unread when withErrors", `{"protectionTime":1,"withErrors":true,"blueMind":{"displayName":"x"}}`, GenerationOK},
		{"no withWarnings", `{"protectionTime":1,"withErrors":false,"blueMind":{"displayName":"x"}}`, GenerationCrash},
	}
	for _, c := range cases {
		_, kind, err := ParseGeneration([]byte(c.in))
		if kind != c.want {
			t.Errorf("%s: kind %v (%v), want %v", c.name, kind, err, c.want)
		}
		if (kind == GenerationOK) != (err == nil) {
			t.Errorf("%s: kind %v with err %v", c.name, kind, err)
		}
	}
}

func TestGeneration_StatusText(t *testing.T) {
	for _, c := range []struct {
		g    Generation
		want string
	}{{Generation{}, "OK"}, {Generation{WithWarnings: true}, "Ending with warnings"}, {Generation{WithErrors: true, WithWarnings: true}, "Ending with errors"}} {
		if got := c.g.StatusText(); got != c.want {
			t.Errorf("%+v: %q", c.g, got)
		}
	}
}

func genFile(t *testing.T, name, body string) GenFile {
	t.Helper()
	return newGenFile(name, []byte(body), true)
}

func genJSON(id int, pt int64, name string) string {
	return `{"id":` + itoa(id) + `,"protectionTime":` + itoa64(pt) + `,"blueMind":{"displayName":"` + name + `"},"withWarnings":false,"withErrors":false,"parts":[]}`
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestMenuIndex_SortsByProtectionTimeIgnoresInvalidJSON(t *testing.T) {
	files := []GenFile{
		genFile(t, "generation-30.json", genJSON(30, 3000_000, "4.8.2")),
		genFile(t, "generation-10.json", genJSON(10, 1000_000, "4.8.2")),
		genFile(t, "generation-bad.json", `{"id":`),
		genFile(t, "generation-20.json", genJSON(20, 2000_000, "4.8.2")),
	}
	for id, want := range map[int]int{10: 1, 20: 2, 30: 3} {
		got, err := MenuIndex(files, id)
		if err != nil || got != want {
			t.Errorf("MenuIndex(%d) = %d, %v; want %d", id, got, err, want)
		}
	}
	if _, err := MenuIndex(files, 99); err == nil {
		t.Error("unknown id: no error")
	}
}

func TestMenuIndex_DuplicateProtectionTimeIsAmbiguous(t *testing.T) {
	files := []GenFile{
		genFile(t, "generation-1.json", genJSON(1, 1000_000, "a")),
		genFile(t, "generation-2.json", genJSON(2, 1000_000, "b")),
		genFile(t, "generation-3.json", genJSON(3, 5000_000, "c")),
	}
	menu, err := BuildMenu(files)
	if err != nil || len(menu) != 2 {
		t.Fatalf("menu %v err %v: duplicates must collapse to one entry", menu, err)
	}
	if menu[0].File != "generation-2.json" || len(menu[0].Ambiguous) != 1 {
		t.Errorf("the last file read must win: %+v", menu[0])
	}
	if _, err := MenuIndex(files, 1); err == nil {
		t.Error("duplicate protectionTime: no error")
	}
	if got, err := MenuIndex(files, 3); err != nil || got != 2 {
		t.Errorf("MenuIndex(3) = %d, %v; want 2 (dedupe shifts indexes)", got, err)
	}
}

func TestMenuIndex_CrashFileFails(t *testing.T) {
	files := []GenFile{
		genFile(t, "generation-1.json", genJSON(1, 1000_000, "a")),
		genFile(t, "generation-2.json", `{"id":2}`),
	}
	if _, err := MenuIndex(files, 1); !errors.Is(err, ErrMenuCrash) {
		t.Errorf("err = %v, want ErrMenuCrash", err)
	}
}

func TestRenderMenuLine_InNodeTimeZone(t *testing.T) {
	g, _, _ := ParseGeneration(fixture312(t))
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		testenv.SkipOrFail(t, "no tzdata for Europe/Paris")
	}
	if got, want := RenderMenuLine(3, g, paris), "3\t2022-03-14 22:00:02\t4.8.2\tstatus: OK"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := RenderMenuLine(1, g, time.UTC), "1\t2022-03-14 21:00:02\t4.8.2\tstatus: OK"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f := &Facts{TZLink: "../usr/share/zoneinfo/Europe/Paris"}
	if got := f.MenuLineFor(1, g); !strings.Contains(got, "22:00:02") {
		t.Errorf("facts TZ: %q", got)
	}
	f = &Facts{TZOffset: "+0530"}
	if got := f.MenuLineFor(1, g); !strings.Contains(got, "02:30:02") {
		t.Errorf("fixed offset: %q", got)
	}
	f = &Facts{LocalDates: map[int64]string{1647291602: "2022-03-14 17:00:02"}}
	if got := f.MenuLineFor(1, g); !strings.Contains(got, "17:00:02") {
		t.Errorf("node-rendered date must win: %q", got)
	}
}

func TestRenderMenu_FamilyLayouts(t *testing.T) {
	lines := []string{"1\t2022-03-14 22:00:02\t4.8.2\tstatus: OK", "2\t2022-03-15 22:00:02\t4.8.2\tstatus: OK"}
	legacy := string(RenderMenu(FamilyLegacy, lines))
	if want := lines[0] + "\n" + lines[1] + "\nChoose backup generation to restore (1-2): "; legacy != want {
		t.Errorf("legacy %q", legacy)
	}
	bm4 := string(RenderMenu(FamilyBM4ES, lines))
	if want := lines[0] + lines[1] + "\nChoose backup generation to restore (1-2): \n"; bm4 != want {
		t.Errorf("bm4 %q", bm4)
	}
	for _, fam := range []string{FamilyLegacy, FamilyBM4} {
		b := RenderMenu(fam, lines)
		entries, prompt, complete := ParseMenu(b)
		if !prompt || !complete || len(entries) != 2 || entries[1].String() != lines[1] {
			t.Errorf("%s: parse back %v %v %v", fam, entries, prompt, complete)
		}
		// Every prefix is a partial read: never complete before the prompt.
		for i := range len(b) - 1 {
			if _, _, c := ParseMenu(b[:i]); c {
				t.Fatalf("%s: complete after %d of %d bytes", fam, i, len(b))
			}
		}
	}
}

func TestParseMenu_RepeatedAndPTYOutput(t *testing.T) {
	lines := []string{"1\t2022-03-14 22:00:02\t4.8.2\tstatus: Ending with errors", "2\t2022-03-15 22:00:02\t4.1.63476\tstatus: OK"}
	one := RenderMenu(FamilyBM4, lines)
	b := append(append([]byte("Ignoring file: x - No JSON object could be decoded\r\n"), one...), one...)
	b = []byte(strings.ReplaceAll(string(b), "\n", "\r\n"))
	entries, prompt, complete := ParseMenu(b)
	if !prompt || !complete || len(entries) != 2 || entries[0].Status != "Ending with errors" || entries[1].DisplayName != "4.1.63476" {
		t.Errorf("got %+v %v %v", entries, prompt, complete)
	}
	// A prompt announcing more entries than shown is not complete.
	if _, p, c := ParseMenu([]byte(lines[0] + "\nChoose backup generation to restore (1-2): \n")); !p || c {
		t.Errorf("mismatched count: prompt %v complete %v", p, c)
	}
	// The "(1-0)" prompt of a store without loadable files.
	if e, p, c := ParseMenu([]byte("\nChoose backup generation to restore (1-0): \n")); !p || !c || len(e) != 0 {
		t.Errorf("empty menu: %v %v %v", e, p, c)
	}
}

func TestLatest_NewestRestorable(t *testing.T) {
	fx := newFleetFixture(t, "")
	s := summarize(fx.results)
	c, ok := Latest(s.Common)
	if !ok || c.ID != 312 {
		t.Fatalf("Latest = %+v, %v; want 312 (313 is unfinished)", c, ok)
	}
	if len(s.Common) != 2 || s.Common[0].ID != 312 || s.Common[1].ID != 313 || s.Common[1].Restorable {
		t.Errorf("common %+v", s.Common)
	}
	if len(s.PerNode) != 2 || s.PerNode[0].Generations[0].LocalTime == "" || s.PerNode[0].Generations[0].MenuIndex != 1 {
		t.Errorf("per node %+v", s.PerNode)
	}
	if _, ok := Latest(nil); ok {
		t.Error("Latest of nothing")
	}
}

func TestGenerationFileID(t *testing.T) {
	for name, want := range map[string]int{"generation-312.json": 312, "generation-0.json": 0, "generation-x.json": -1, "generation-312.json.bak": -1} {
		id, ok := GenerationFileID(name)
		if (want < 0) == ok || ok && id != want {
			t.Errorf("%s: %d %v", name, id, ok)
		}
	}
}
