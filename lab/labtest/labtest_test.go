package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const inv = `[architecture]
name = "lab"

[ssh]
user = "root"

[[nodes]]
name = "core"
ip = "10.9.0.11"
address = "10.9.0.11"
core = true

[[nodes]]
name = "mail"
ip = "10.9.0.12"
address = "10.9.0.12"
`

func fakeLab(t *testing.T) *Lab {
	t.Helper()
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "inventory.toml"), []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Lab{state: state, dirty: map[string]bool{}}
}

func TestIP_ReadsTheNodesIPFromTheInventory(t *testing.T) {
	l := fakeLab(t)
	if got := l.IP(t, "mail"); got != "10.9.0.12" {
		t.Errorf("IP(mail) = %q", got)
	}
	if got := l.IP(t, "core"); got != "10.9.0.11" {
		t.Errorf("IP(core) = %q", got)
	}
}

func TestEditInventory_ChangesOnlyThatNodesKey(t *testing.T) {
	l := fakeLab(t)
	p := l.EditInventory(t, "mail", "ip", `"10.9.0.22"`)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	want := strings.Replace(inv, `ip = "10.9.0.12"`, `ip = "10.9.0.22"`, 1)
	if got != want {
		t.Errorf("edited inventory:\n%s\nwant:\n%s", got, want)
	}
	if orig, _ := os.ReadFile(l.InventoryPath()); string(orig) != inv {
		t.Error("the lab's own inventory was modified")
	}
}

func TestEditInventory_AddsAKeyTheNodeLacksToThatNodeOnly(t *testing.T) {
	l := fakeLab(t)
	p := l.EditInventory(t, "core", "become", `"sudo"`)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(inv, "name = \"core\"\n", "name = \"core\"\nbecome = \"sudo\"\n", 1)
	if string(b) != want {
		t.Errorf("edited inventory:\n%s\nwant:\n%s", b, want)
	}
	if _, err := editInventory(strings.Split(inv, "\n"), "nope", "ip", `"1.2.3.4"`); err == nil {
		t.Error("an unknown node was accepted")
	}
}

func TestInventoryWithout_DropsOnlyThatNodesTable(t *testing.T) {
	l := fakeLab(t)
	b, err := os.ReadFile(l.InventoryWithout(t, "core"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(inv, "[[nodes]]\nname = \"core\"\nip = \"10.9.0.11\"\naddress = \"10.9.0.11\"\ncore = true\n\n", "", 1)
	if string(b) != want || want == inv {
		t.Errorf("inventory without core:\n%s\nwant:\n%s", b, want)
	}
	if _, err := dropInventoryNode(strings.Split(inv, "\n"), "nope"); err == nil {
		t.Error("an unknown node was accepted")
	}
}
