package tasks

import (
	"slices"
	"strconv"
	"strings"
)

// checkGenerationParts runs when a generation is chosen. It fails when this
// node does not see the chosen file with the same content, when its menu
// index cannot be trusted (a crash file, another generation sharing its
// protectionTime or its menu line), when the generation has an unfinished or
// non-VALID part, lacks the parts the script requires for the node's family
// (bm/conf and bm/es for bm4+, bm/core for legacy), has no part for this
// node, or none for one of its inventory tags.
func checkGenerationParts(e *nodeEnv) (Status, string) {
	if e.Gen == nil || e.Gen.Requested == "" {
		return Skip, "no generation chosen"
	}
	g := e.Gen.Chosen
	if g == nil {
		return Fail, e.Gen.Err
	}
	f := e.Facts
	id := strconv.Itoa(g.ID)
	var mine *GenFile
	for i := range f.GenerationFiles {
		gf := &f.GenerationFiles[i]
		if gf.Kind == GenerationOK && gf.Gen.ID == g.ID && gf.SHA256 == e.Gen.SHA256 {
			mine = gf
		}
	}
	if mine == nil {
		return Fail, "generation " + id + " not seen with the common content on this node"
	}
	idx, err := MenuIndex(f.GenerationFiles, g.ID)
	if err != nil {
		return Fail, err.Error()
	}
	line := f.MenuLineFor(idx, g)
	e.Result.MenuIndex, e.Result.MenuLine = idx, line
	menu, _ := BuildMenu(f.GenerationFiles)
	key := menuKey(line)
	for _, m := range menu {
		if m.Index == idx {
			continue
		}
		if menuKey(f.MenuLineFor(m.Index, m.Gen)) == key {
			return Fail, "menu line " + strconv.Quote(line) + " is also shown for " + m.File + " (same second and display name): the answer cannot be verified"
		}
	}
	var bad []string
	for _, p := range g.Parts {
		if !p.Finished() {
			bad = append(bad, p.Tag+"/"+strconv.Itoa(p.ID)+" ("+p.Valid+", end "+endText(p.End)+")")
		}
	}
	if len(bad) > 0 {
		return Fail, "generation " + id + " has unfinished or invalid parts: " + list(bad)
	}
	var required []string
	switch f.ScriptFamily {
	case FamilyLegacy:
		required = []string{"bm/core"}
	case FamilyBM4, FamilyBM4ES, FamilyBM5:
		required = []string{"bm/conf", "bm/es"}
	}
	for _, t := range required {
		if !g.HasTag(t) || !anyPartDir(f, g, t) {
			return Fail, "generation " + id + " has no " + t + " part with data, which the " + f.ScriptFamily + " script requires"
		}
	}
	parts := nodeParts(f, e.Node.IP.String(), g)
	if len(parts) == 0 {
		return Fail, "generation " + id + " has no part under dp_spool/rsync/" + e.Node.IP.String()
	}
	var tags []string
	for _, p := range parts {
		if !slices.Contains(tags, p.Tag) {
			tags = append(tags, p.Tag)
		}
	}
	var missing []string
	for _, t := range e.Node.Tags {
		if !slices.Contains(tags, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return Fail, "generation " + id + " has no part for tag(s) " + list(missing) + " of this node (found " + list(tags) + ")"
	}
	return Pass, "menu index " + strconv.Itoa(idx) + " (" + strings.ReplaceAll(line, "\t", " ") + "); parts " + strings.Join(tags, ", ")
}

func endText(e *int64) string {
	if e == nil {
		return "null"
	}
	return strconv.FormatInt(*e, 10)
}

// anyPartDir reports whether some IP dir holds a part of g with tag.
func anyPartDir(f *Facts, g *Generation, tag string) bool {
	for _, p := range g.Parts {
		if p.Tag != tag {
			continue
		}
		suffix := "/" + p.Tag + "/" + strconv.Itoa(p.ID)
		for _, d := range f.PartDirs {
			if strings.HasSuffix(d, suffix) && strings.Count(d, "/") == 3 {
				return true
			}
		}
	}
	return false
}

// menuKey is the date and display name of a menu line: what an operator
// (or prapush) can tell generations apart by.
func menuKey(line string) string {
	fs := strings.SplitN(line, "\t", 4)
	if len(fs) < 3 {
		return line
	}
	return fs[1] + "\t" + fs[2]
}
