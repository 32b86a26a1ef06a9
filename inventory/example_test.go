package inventory_test

import (
	"errors"
	"fmt"

	"github.com/prapush/prapush/inventory"
)

func ExampleLoad() {
	inv, err := inventory.Load("../inventory.example.toml")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, stage := range inventory.Stages(inv.Nodes) {
		for _, n := range stage {
			fmt.Printf("stage %d: %s %s via %s@%s:%d\n", n.Stage, n.Name, n.IP, n.SSH.User, n.Address, n.SSH.Port)
		}
	}
	fmt.Println("core:", inv.Core().Name)
	// Output:
	// stage 1: es1 192.0.2.11 via root@192.0.2.11:22
	// stage 1: mail1 192.0.2.12 via bmadmin@mail1.acme.example:2022
	// stage 2: core 192.0.2.10 via root@bm-core.acme.example:22
	// core: core
}

func ExampleParse_problems() {
	_, err := inventory.Parse("inventory.toml", []byte(`[architecture]
name = "acme-prod"
bluemind_version = "4.8.2"

[[nodes]]
name = "core"
ip = "10.0.0.300"
core = true
`))
	var e *inventory.Error
	if errors.As(err, &e) {
		for _, p := range e.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// inventory.toml:1: architecture.external_url: required key is missing
	// inventory.toml:7: nodes[0].ip: invalid ip "10.0.0.300": want the IPv4 address the backup knows this node by
}

func ExampleInventory_Select() {
	inv, err := inventory.Load("../inventory.example.toml")
	if err != nil {
		fmt.Println(err)
		return
	}
	nodes, err := inv.Select("tag:mail/imap,core")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range nodes {
		fmt.Println(n.Name)
	}
	_, err = inv.Select("es*,db1")
	fmt.Println(err)
	// Output:
	// mail1
	// core
	// no node matches "db1" in the inventory
}
