package tasks

import (
	"slices"
	"strconv"
	"strings"
)

// checkGenerationCoverage (architecture) runs when a generation is chosen.
// It fails when a part of it has no data dir in the store, or its data
// belongs to an IP that is no inventory node's (nobody would restore it).
func checkGenerationCoverage(gen *genChoice, results []NodeResult, inventoryIPs []string) (Status, string) {
	if gen == nil || gen.Requested == "" {
		return Skip, "no generation chosen"
	}
	g := gen.Chosen
	if g == nil {
		return Skip, "no generation chosen: " + gen.Err
	}
	// The store is shared: the union of every node's listing.
	dirs := map[string][]string{} // "<tag>/<id>" → ips
	read := false
	for _, r := range results {
		if r.Facts == nil || !r.Facts.Complete {
			continue
		}
		read = true
		for _, d := range r.Facts.PartDirs {
			ip, rest, ok := strings.Cut(d, "/")
			if ok && !slices.Contains(dirs[rest], ip) {
				dirs[rest] = append(dirs[rest], ip)
			}
		}
	}
	if !read {
		return Skip, "no node's store could be read"
	}
	var nodata, foreign []string
	for _, p := range g.Parts {
		key := p.Tag + "/" + strconv.Itoa(p.ID)
		ips := dirs[key]
		if len(ips) == 0 {
			nodata = append(nodata, key)
			continue
		}
		for _, ip := range ips {
			if !slices.Contains(inventoryIPs, ip) {
				foreign = append(foreign, key+" under "+ip)
			}
		}
	}
	id := strconv.Itoa(g.ID)
	switch {
	case len(nodata) > 0 && len(foreign) > 0:
		return Fail, "generation " + id + ": no data dir for " + list(nodata) + "; not an inventory IP: " + list(foreign)
	case len(nodata) > 0:
		return Fail, "generation " + id + ": no data dir for " + list(nodata)
	case len(foreign) > 0:
		return Fail, "generation " + id + ": parts under IPs not in the inventory: " + list(foreign)
	}
	return Pass, "generation " + id + ": all " + strconv.Itoa(len(g.Parts)) + " parts have data under inventory IPs"
}
