package inventory

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../inventory.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add(selectInventory)
	f.Add(doc(nodeA, core))
	f.Add("nodes = [{name=\"a\", ip=\"10.0.0.1\", core=true, step_timeouts={\"x\"=\"1m\"}}]\n" + arch)
	f.Add(doc(nodeA+"stage = 3\n", core+"stage = 2\n"))
	f.Add("a.b.c = '''\n[[x]]\n'''\n[[a.d]]\ne = [{f=1979-05-27 07:32:00}, [{g=\"}\"}]]\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, src string) {
		inv, err := Parse("f.toml", []byte(src))
		nlines := strings.Count(src, "\n") + 1

		// The line scanner must agree with the toml package on every
		// document it accepts, or problems would point at wrong lines.
		var docm map[string]any
		if md, derr := toml.Decode(src, &docm); derr == nil {
			lines := keyLines(src, md)
			if lines == nil {
				t.Fatalf("key scanner disagrees with toml on %q", src)
			}
			for k, l := range lines {
				if l < 1 || l > nlines {
					t.Fatalf("key %s at line %d of %d", k, l, nlines)
				}
			}
			// Same count is not enough: each key event must sit on a line
			// that spells the key the toml package names.
			srcLines := strings.Split(strings.TrimPrefix(src, "\xef\xbb\xbf"), "\n")
			keys := md.Keys()
			k := 0
			for _, ev := range scanKeyLines(src) {
				if ev.kind == evArrayElem {
					continue
				}
				last := keys[k][len(keys[k])-1]
				if bareKey.MatchString(last) && !strings.Contains(srcLines[ev.line-1], last) {
					t.Fatalf("key %v placed on line %d: %q", keys[k], ev.line, srcLines[ev.line-1])
				}
				k++
			}
		}

		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %T without problems: %v", err, err)
			}
			for _, p := range e.Problems {
				if p.File != "f.toml" || p.Line < 1 || p.Line > nlines || p.Msg == "" {
					t.Fatalf("badly located problem %+v", p)
				}
			}
			return
		}
		names, ips := map[string]bool{}, map[string]bool{}
		cores, maxOther, coreStage := 0, 0, 0
		for _, n := range inv.Nodes {
			if names[n.Name] || !nodeName.MatchString(n.Name) || n.Name == "." || n.Name == ".." {
				t.Fatalf("bad or duplicate name %q", n.Name)
			}
			names[n.Name] = true
			if !n.IP.Is4() || ips[n.IP.String()] {
				t.Fatalf("bad or duplicate ip %v", n.IP)
			}
			ips[n.IP.String()] = true
			if n.Stage < 1 || n.Address == "" || n.SSH.Port < 1 || n.SSH.ConnectTimeout <= 0 {
				t.Fatalf("unresolved node %+v", n)
			}
			if n.Core {
				cores++
				coreStage = n.Stage
			} else {
				maxOther = max(maxOther, n.Stage)
			}
		}
		if cores != 1 || coreStage <= maxOther {
			t.Fatalf("%d cores, core stage %d, highest other stage %d", cores, coreStage, maxOther)
		}
		if len(inv.Nodes) == 0 || inv.Core().Name == "" {
			t.Fatal("valid inventory without nodes or core")
		}
	})
}
