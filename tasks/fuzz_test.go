package tasks

import (
	"os"
	"testing"
)

func FuzzParseGeneration(f *testing.F) {
	if b, err := os.ReadFile("testdata/generation-312.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(gen313))
	f.Add([]byte(`{"protectionTime":1e400,"withErrors":false,"blueMind":{"displayName":null}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"protectionTime":-1,"withErrors":1,"blueMind":{"displayName":[1]},"parts":[1,{"end":"x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, kind, err := ParseGeneration(b)
		if (kind == GenerationOK) != (err == nil) || (g != nil) != (kind == GenerationOK) {
			t.Fatalf("kind %v, err %v, gen %v", kind, err, g != nil)
		}
		if g != nil {
			_ = RenderMenuLine(1, g, nil)
			_ = g.Restorable()
		}
	})
}

func FuzzParseFacts(f *testing.F) {
	if b, err := os.ReadFile("testdata/facts/captured-core.out"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("@@prapush uid 1\n0\n@@prapush gen.name 3\na\nb\n@@prapush end 2\nok\n"))
	f.Add([]byte("noise\n@@prapush df 9\n/x\t12 MB\n@@prapush gen.body 99\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		facts, err := ParseFacts(b)
		if facts == nil {
			t.Fatalf("nil facts (err %v)", err)
		}
		_ = facts.Location()
		_ = facts.ScriptHostIP()
		_, _ = BuildMenu(facts.GenerationFiles)
		// Re-framing what was parsed must parse to the same records.
		recs, _ := ParseRecords(b)
		again, err := ParseRecords(frame(recs))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-framed records: %d vs %d, %v", len(again), len(recs), err)
		}
	})
}

func FuzzParseMenu(f *testing.F) {
	lines := []string{"1\t2022-03-14 22:00:02\t4.8.2\tstatus: OK", "2\t2022-03-15 22:00:02\t4.8.2\tstatus: Ending with warnings"}
	f.Add(RenderMenu(FamilyLegacy, lines))
	f.Add(RenderMenu(FamilyBM4, lines))
	f.Add([]byte("\nChoose backup generation to restore (1-0): \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, prompt, complete := ParseMenu(b)
		if complete && !prompt {
			t.Fatal("complete without a prompt")
		}
		if complete {
			for i, e := range entries {
				if e.Index != i+1 {
					t.Fatalf("complete menu with index %d at %d", e.Index, i)
				}
			}
		}
	})
}
