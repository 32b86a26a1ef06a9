package inventory

import (
	"reflect"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestKeyLines_LocatesKeysOfEveryArrayElementDespiteTrickyStrings(t *testing.T) {
	src := `title = """
[[nodes]]
name = "not a key"
"""  # a multi-line string that looks like tables
when = 1979-05-27 07:32:00
"a.b" = '''x = "y" ''''
[[nodes]]
name = "a" # comment [x]
ip = "10.0.0.1"
  [nodes.ssh_opts]
  port = 22
[[nodes]]
name = 'b'
ip.v4 = "10.0.0.2"
inline = { x = 1, y = { z = "}" }, w = 1979-05-27 07:32:00 }
list = [ "]", { k = 1 },
  # comment {
  { k = 2 } ]
`
	var doc map[string]any
	md, err := toml.Decode(src, &doc)
	if err != nil {
		t.Fatal(err)
	}
	got := keyLines(src, md)
	want := map[string]int{
		"title": 1, "when": 5, `"a.b"`: 6,
		"nodes[0]": 7, "nodes[0].name": 8, "nodes[0].ip": 9,
		"nodes[0].ssh_opts": 10, "nodes[0].ssh_opts.port": 11,
		"nodes[1]": 12, "nodes[1].name": 13, "nodes[1].ip": 14, "nodes[1].ip.v4": 14,
		"nodes[1].inline": 15, "nodes[1].inline.x": 15, "nodes[1].inline.y": 15, "nodes[1].inline.y.z": 15, "nodes[1].inline.w": 15,
		"nodes[1].list": 16, "nodes[1].list[0]": 16, "nodes[1].list[1]": 16, "nodes[1].list[1].k": 16, "nodes[1].list[2]": 18, "nodes[1].list[2].k": 18,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines =\n%v\nwant\n%v", got, want)
	}
}
