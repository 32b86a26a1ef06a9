package tasks

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/prapush/prapush/inventory"
)

// The check ids of the spec, in the order of its table.
const (
	CheckSSHConnect          = "ssh.connect"
	CheckSSHPrivilege        = "ssh.privilege"
	CheckBackupPresent       = "backup.present"
	CheckBackupMounted       = "backup.mounted"
	CheckBackupWritable      = "backup.writable"
	CheckBackupShared        = "backup.shared"
	CheckBackupGenerations   = "backup.generations"
	CheckBackupIdle          = "backup.idle"
	CheckHostIP              = "host.ip"
	CheckHostBackupData      = "host.backup_data"
	CheckBlueMindInstalled   = "bluemind.installed"
	CheckBlueMindVersion     = "bluemind.version"
	CheckBlueMindExternalURL = "bluemind.external_url"
	CheckOSRelease           = "os.release"
	CheckOSPython            = "os.python"
	CheckRestoreScript       = "restore.script"
	CheckRestorePostgreSQL   = "restore.postgresql"
	CheckRestoreIdle         = "restore.idle"
	CheckDiskSpace           = "disk.space"
	CheckGenerationCommon    = "generation.common"
	CheckGenerationCoverage  = "generation.coverage"
	CheckGenerationParts     = "generation.parts"
)

// nodeEnv is what a per-node check may look at: recorded facts, the
// inventory, the other nodes' results and the chosen generation.
type nodeEnv struct {
	Arch   inventory.Architecture
	Node   inventory.Node
	Facts  *Facts // never nil when a factsCheck runs
	Result *NodeResult
	All    []NodeResult // every selected node, this one included
	Gen    *genChoice
}

// genChoice is the outcome of resolving Options.Generation.
type genChoice struct {
	Requested string      // "" = none requested
	Chosen    *Generation // nil when none or not found
	SHA256    string      // content hash of the chosen file
	Err       string      // why nothing was chosen although one was requested
}

// factsCheck is a per-node check evaluated on facts.
type factsCheck struct {
	ID string
	Fn func(e *nodeEnv) (Status, string)
}

// factsChecks are the per-node checks after ssh.connect and ssh.privilege,
// in the spec's order.
var factsChecks = []factsCheck{
	{CheckBackupPresent, checkBackupPresent},
	{CheckBackupMounted, checkBackupMounted},
	{CheckBackupWritable, checkBackupWritable},
	{CheckBackupShared, checkBackupShared},
	{CheckBackupGenerations, checkBackupGenerations},
	{CheckBackupIdle, checkBackupIdle},
	{CheckHostIP, checkHostIP},
	{CheckHostBackupData, checkHostBackupData},
	{CheckBlueMindInstalled, checkBlueMindInstalled},
	{CheckBlueMindVersion, checkBlueMindVersion},
	{CheckBlueMindExternalURL, checkBlueMindExternalURL},
	{CheckOSRelease, checkOSRelease},
	{CheckOSPython, checkOSPython},
	{CheckRestoreScript, checkRestoreScript},
	{CheckRestorePostgreSQL, checkRestorePostgreSQL},
	{CheckRestoreIdle, checkRestoreIdle},
	{CheckDiskSpace, checkDiskSpace},
	{CheckGenerationParts, checkGenerationParts},
}

// runNodeChecks appends every facts check of one node to its result; when
// the node has no facts, each is skipped with the reason.
func runNodeChecks(arch inventory.Architecture, all []NodeResult, i int, gen *genChoice, obs Observer) {
	r := &all[i]
	reason := ""
	switch {
	case r.DialErr != nil:
		reason = "not connected"
	case r.Facts == nil && r.FactsErr != nil:
		reason = "no facts: " + r.FactsErr.Error()
	case r.Facts == nil:
		reason = "no facts"
	case r.Facts.UID != 0:
		reason = "not root (see ssh.privilege)"
	case !r.Facts.Complete:
		reason = "facts incomplete"
		if r.FactsErr != nil {
			reason += ": " + r.FactsErr.Error()
		}
	case r.Facts.ReadErr != "":
		reason = "facts incomplete: " + r.Facts.ReadErr
	}
	env := &nodeEnv{Arch: arch, Node: r.Node, Facts: r.Facts, Result: r, All: all, Gen: gen}
	for _, c := range factsChecks {
		res := CheckResult{ID: c.ID, Node: r.Node.Name}
		if reason != "" {
			res.Status, res.Message = Skip, reason
		} else {
			res.Status, res.Message = c.Fn(env)
		}
		r.Checks = append(r.Checks, res)
		obs.Check(res)
	}
}

// others returns the results of the nodes other than env's that have facts.
func (e *nodeEnv) others() []*NodeResult {
	var out []*NodeResult
	for i := range e.All {
		r := &e.All[i]
		if r.Node.Name != e.Node.Name && r.Facts != nil && r.Facts.Complete {
			out = append(out, r)
		}
	}
	return out
}

// nodeTags returns the tags this node will restore: from the chosen
// generation's parts whose dir is under the node's IP when one is chosen,
// else from the part dirs under its IP and its inventory tags.
func (e *nodeEnv) nodeTags() []string {
	var tags []string
	add := func(t string) {
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	ip := e.Node.IP.String()
	if g := e.Gen.chosen(); g != nil {
		for _, p := range nodeParts(e.Facts, ip, g) {
			add(p.Tag)
		}
		return tags
	}
	for _, d := range e.Facts.LocalPartDirs(ip) {
		if i := strings.LastIndexByte(d, '/'); i > 0 {
			add(d[:i])
		}
	}
	for _, t := range e.Node.Tags {
		add(t)
	}
	sort.Strings(tags)
	return tags
}

func (g *genChoice) chosen() *Generation {
	if g == nil {
		return nil
	}
	return g.Chosen
}

// nodeParts returns the parts of g whose directory exists under ip: the
// parts the script restores on a node the backup knows by ip.
func nodeParts(f *Facts, ip string, g *Generation) []Part {
	var out []Part
	for _, p := range g.Parts {
		if f.HasPartDir(ip, p.Tag, p.ID) {
			out = append(out, p)
		}
	}
	return out
}

// list renders at most 5 items for a message.
func list(items []string) string {
	if len(items) > 5 {
		return strings.Join(items[:5], ", ") + fmt.Sprintf(" (+%d more)", len(items)-5)
	}
	return strings.Join(items, ", ")
}
