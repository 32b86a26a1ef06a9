package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GenerationView is one generation file as one node shows it.
type GenerationView struct {
	ID             int    // 0 when the file does not load
	File           string // base name
	ProtectionTime time.Time
	LocalTime      string // protection time as the node's menu shows it
	DisplayName    string
	Status         string // the menu's status text
	Parts          int
	TotalSizeMB    int64
	SHA256         string
	Kind           GenerationKind
	Err            string // why the script ignores or crashes on it
	MenuIndex      int    // 0 when not in the menu
	Restorable     bool   // every part VALID and finished
}

// NodeGenerations is the generations one node sees.
type NodeGenerations struct {
	Node        string
	Read        bool // false when the node's files could not be read
	Generations []GenerationView
}

// CommonGeneration is a generation every read node sees with identical
// content.
type CommonGeneration struct {
	ID          int
	SHA256      string
	Generation  *Generation
	Restorable  bool   // every part VALID and finished, required parts present
	Reason      string // why it is not restorable
	TotalSizeMB int64
}

// GenerationSummary is the generations of the architecture.
type GenerationSummary struct {
	PerNode []NodeGenerations // like the selected nodes
	// Common are the generations every node with facts sees with the same
	// sha256, oldest first.
	Common []CommonGeneration
	// Restorable are the ids of Common that are restorable, oldest first.
	Restorable []int
	// Unread are the nodes whose files could not be read: Common ignores
	// them.
	Unread []string
}

// Latest returns the newest generation of common that is restorable.
func Latest(common []CommonGeneration) (*CommonGeneration, bool) {
	var best *CommonGeneration
	for i := range common {
		c := &common[i]
		if c.Restorable && (best == nil || c.Generation.ProtectionTime > best.Generation.ProtectionTime) {
			best = c
		}
	}
	return best, best != nil
}

// Find returns the common generation with id.
func (s *GenerationSummary) Find(id int) (*CommonGeneration, bool) {
	for i := range s.Common {
		if s.Common[i].ID == id {
			return &s.Common[i], true
		}
	}
	return nil, false
}

// summarize builds the summary from the nodes' facts.
func summarize(results []NodeResult) *GenerationSummary {
	s := &GenerationSummary{}
	type seen struct {
		sha string
		gen *Generation
		n   int
		bad bool // differing content or a duplicate on some node
	}
	byID := map[int]*seen{}
	read := 0
	for _, r := range results {
		ng := NodeGenerations{Node: r.Node.Name}
		f := r.Facts
		if f == nil || !f.Complete {
			s.Unread = append(s.Unread, r.Node.Name)
			s.PerNode = append(s.PerNode, ng)
			continue
		}
		ng.Read = true
		read++
		menu, _ := BuildMenu(f.GenerationFiles)
		idxOf := map[string]int{}
		for _, m := range menu {
			idxOf[m.File] = m.Index
		}
		here := map[int]bool{}
		for _, gf := range f.GenerationFiles {
			v := GenerationView{File: gf.Name, SHA256: gf.SHA256, Kind: gf.Kind, Err: errText(gf.Err), MenuIndex: idxOf[gf.Name]}
			if g := gf.Gen; g != nil && gf.Kind == GenerationOK {
				v.ID, v.DisplayName, v.Status = g.ID, g.DisplayName, g.StatusText()
				v.ProtectionTime = g.Time().In(f.Location())
				v.LocalTime = v.ProtectionTime.Format(MenuDateLayout)
				if d, ok := f.LocalDates[g.Time().Unix()]; ok && d != "" {
					v.LocalTime = d
				}
				v.Parts, v.TotalSizeMB, v.Restorable = len(g.Parts), g.TotalSizeMB(), g.Restorable()
				sn := byID[g.ID]
				switch {
				case sn == nil:
					byID[g.ID] = &seen{sha: gf.SHA256, gen: g, n: 1}
					here[g.ID] = true
				case here[g.ID]:
					sn.bad = true // two files with one id on one node
				default:
					here[g.ID] = true
					sn.n++
					if sn.sha != gf.SHA256 {
						sn.bad = true
					}
				}
			}
			ng.Generations = append(ng.Generations, v)
		}
		s.PerNode = append(s.PerNode, ng)
	}
	if read == 0 {
		return s
	}
	for id, sn := range byID {
		if sn.bad || sn.n != read {
			continue
		}
		c := CommonGeneration{ID: id, SHA256: sn.sha, Generation: sn.gen, TotalSizeMB: sn.gen.TotalSizeMB()}
		c.Restorable, c.Reason = restorable(sn.gen)
		s.Common = append(s.Common, c)
	}
	slices.SortFunc(s.Common, func(a, b CommonGeneration) int {
		if a.Generation.ProtectionTime != b.Generation.ProtectionTime {
			if a.Generation.ProtectionTime < b.Generation.ProtectionTime {
				return -1
			}
			return 1
		}
		return a.ID - b.ID
	})
	for _, c := range s.Common {
		if c.Restorable {
			s.Restorable = append(s.Restorable, c.ID)
		}
	}
	return s
}

// restorable says whether g can be restored by any family: every part VALID
// and finished, and bm/conf or bm/core present (bm4+ needs bm/conf and
// bm/es, legacy bm/core; generation.parts checks each node's family).
func restorable(g *Generation) (bool, string) {
	if len(g.Parts) == 0 {
		return false, "no parts"
	}
	var bad []string
	for _, p := range g.Parts {
		if !p.Finished() {
			bad = append(bad, p.Tag+"/"+strconv.Itoa(p.ID))
		}
	}
	if len(bad) > 0 {
		return false, "unfinished or invalid parts: " + list(bad)
	}
	if !(g.HasTag("bm/conf") && g.HasTag("bm/es")) && !g.HasTag("bm/core") {
		return false, "neither bm/conf + bm/es nor bm/core parts"
	}
	return true, ""
}

// resolveGeneration turns Options.Generation into the chosen generation.
func resolveGeneration(req string, s *GenerationSummary) *genChoice {
	gc := &genChoice{Requested: req}
	switch {
	case req == "":
		return gc
	case req == "latest":
		c, ok := Latest(s.Common)
		if !ok {
			gc.Err = "no restorable generation common to every node"
			return gc
		}
		gc.Chosen, gc.SHA256 = c.Generation, c.SHA256
		return gc
	}
	id, err := strconv.Atoi(req)
	if err != nil || id < 0 {
		gc.Err = "generation " + strconv.Quote(req) + " is neither an integer id nor \"latest\""
		return gc
	}
	c, ok := s.Find(id)
	if !ok {
		gc.Err = "generation " + req + " is not seen with identical content on every node"
		return gc
	}
	gc.Chosen, gc.SHA256 = c.Generation, c.SHA256
	return gc
}

// FactsTimeout is the default bound of one verify round trip on a node
// (Options.RoundTimeout).
const FactsTimeout = 2 * time.Minute

// ErrTimeout marks a node that exceeded a time limit of prapush's own
// (exit code 4 of the spec): errors.Is(NodeResult.FactsErr, ErrTimeout).
var ErrTimeout = errors.New("node time limit exceeded")

// gatherFacts runs the facts script on every connected node.
func gatherFacts(ctx context.Context, f *Fleet, roots scriptRoots, runID string) {
	obs := f.opts.observer()
	arch := f.opts.arch()
	forEach(ctx, len(f.results), f.opts.Parallel, func(ctx context.Context, i int) {
		c := f.conns[i]
		if c == nil {
			return
		}
		r := &f.results[i]
		obs.NodeEvent(r.Node.Name, "facts", "gathering")
		var out strings.Builder
		script := factsScript(roots, arch, r.Node, factsRun{RunID: runID, Tries: 1})
		// A hard NFS mount whose server is gone blocks every read of the
		// store forever: bound the round trip.
		ctx, cancel := context.WithTimeoutCause(ctx, f.opts.roundTimeout(), fmt.Errorf("gather facts: no answer within %v: %w", f.opts.roundTimeout(), ErrTimeout))
		defer cancel()
		err := c.Run(ctx, posixSh(script), nil, &out, nil)
		if ctx.Err() != nil && context.Cause(ctx) != nil && errors.Is(context.Cause(ctx), ErrTimeout) {
			err = context.Cause(ctx)
		}
		r.setFacts([]byte(out.String()), err)
		obs.NodeEvent(r.Node.Name, "facts", "done")
	})
}

// Generations reads the generation files of every node (one round trip per
// node) and summarises them: what each node sees, the generations common to
// all with identical content, and which of those are restorable. The
// results hold ssh.connect (and ssh.privilege for a failed dial). The error
// is only ctx's, returned with what was read before it ended.
func Generations(ctx context.Context, opts Options) (*GenerationSummary, []NodeResult, error) {
	f, _ := connect(ctx, opts, false, nil)
	defer f.Close()
	gatherFacts(ctx, f, defaultRoots, "")
	if ctx.Err() != nil {
		return summarize(f.results), f.results, fmt.Errorf("list generations: %w", context.Cause(ctx))
	}
	return summarize(f.results), f.results, nil
}
