package inventory

import (
	"strings"
	"testing"
)

const selectInventory = `[architecture]
name = "t"
external_url = "mail.t.example"
bluemind_version = "4.8.2"
[[nodes]]
name = "es1"
ip = "10.0.0.1"
tags = ["bm/es"]
[[nodes]]
name = "es2"
ip = "10.0.0.2"
tags = ["bm/es"]
stage = 2
[[nodes]]
name = "mail1"
ip = "10.0.0.3"
tags = ["mail/imap"]
[[nodes]]
name = "core"
ip = "10.0.0.4"
core = true
tags = ["bm/core"]
`

func names(nodes []Node) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.Name
	}
	return strings.Join(s, ",")
}

func TestSelect_ResolvesNamesGlobsAndTagsInInventoryOrder(t *testing.T) {
	inv := mustParse(t, selectInventory)
	tests := []struct{ limit, want string }{
		{"", "es1,es2,mail1,core"},
		{"core,es1", "es1,core"},
		{"es*", "es1,es2"},
		{"tag:bm/es, mail1", "es1,es2,mail1"},
		{"es?,es1,tag:bm/es", "es1,es2"},
		{"[cm]*", "mail1,core"},
	}
	for _, tt := range tests {
		got, err := inv.Select(tt.limit)
		if err != nil {
			t.Errorf("Select(%q): %v", tt.limit, err)
			continue
		}
		if names(got) != tt.want {
			t.Errorf("Select(%q) = %s, want %s", tt.limit, names(got), tt.want)
		}
	}
}

func TestSelect_NamesEverySelectorThatMatchesNothing(t *testing.T) {
	inv := mustParse(t, selectInventory)
	tests := []struct{ limit, want string }{
		{"es1,esx", `"esx"`},
		{"db*", `"db*"`},
		{"tag:bm/pgsql", `"tag:bm/pgsql"`},
		{"[", `invalid node pattern "["`},
		{"es1,,core", "empty node selector"},
	}
	for _, tt := range tests {
		got, err := inv.Select(tt.limit)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Select(%q) = %s, %v; want an error containing %s", tt.limit, names(got), err, tt.want)
		}
	}
	_, err := inv.Select("nope1,es1,nope2")
	if err == nil || !strings.Contains(err.Error(), `"nope1"`) || !strings.Contains(err.Error(), `"nope2"`) {
		t.Errorf("Select with two unknown names: %v", err)
	}
}

func TestStages_GroupsByStageKeepingInventoryOrder(t *testing.T) {
	inv := mustParse(t, selectInventory)
	stages := Stages(inv.Nodes)
	var got []string
	for _, s := range stages {
		got = append(got, names(s))
	}
	if want := "es1,mail1|es2|core"; strings.Join(got, "|") != want {
		t.Errorf("Stages = %s, want %s", strings.Join(got, "|"), want)
	}
	if inv.Core().Name != "core" || inv.Core().Stage != 3 {
		t.Errorf("Core() = %+v", inv.Core())
	}
	if len(Stages(nil)) != 0 {
		t.Error("Stages(nil) is not empty")
	}
}
