// Command labgen writes a fake BlueMind backup store for the prapush lab.
//
//	go run ./lab/cmd/labgen -out DIR -preset NAME [-nodes name=ip:tag+tag,...]
//
// Run it with -list to see the presets.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/prapush/prapush/lab/labgen"
)

func main() {
	out := flag.String("out", "", "store directory to write (created if missing; existing files are kept)")
	preset := flag.String("preset", "ok", "scenario preset (see -list)")
	nodes := flag.String("nodes", "", "nodes as name=ip:tag+tag,... (default: the lab's core, mail and files)")
	url := flag.String("external-url", "", "external-url written in bm.ini (default mail.lab.example)")
	pg := flag.String("pg", "", "PostgreSQL major of the pgsql parts (default 14)")
	target := flag.String("target", "", "node a per-node fault applies to (default: first non-core node)")
	view := flag.String("view-out", "", "stale-view: directory for the target node's own view of the store")
	list := flag.Bool("list", false, "list the presets and exit")
	uids := flag.Bool("uids", false, "print each node's name and server uid and exit")
	flag.Parse()

	opt := labgen.Options{ExternalURL: *url, PGVersion: *pg, Target: *target, ViewOut: *view, Nodes: labgen.DefaultNodes()}
	if *nodes != "" {
		n, err := labgen.ParseNodes(*nodes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "labgen: error:", err)
			os.Exit(2)
		}
		opt.Nodes = n
	}
	if *list {
		for _, p := range labgen.Presets() {
			fmt.Printf("%-22s %s\n", p, labgen.PresetDoc(p))
		}
		return
	}
	if *uids {
		for _, n := range opt.Nodes {
			fmt.Println(n.Name, labgen.ServerUID(n))
		}
		return
	}
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: labgen -out DIR [-preset NAME] [-nodes name=ip:tag+tag,...]")
		os.Exit(2)
	}
	res, err := labgen.Generate(*out, *preset, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "labgen: error:", err)
		os.Exit(1)
	}
	fmt.Printf("labgen: preset %s (target %s): %d generation files in %s\n", *preset, res.Target, len(res.Generations), *out)
}
