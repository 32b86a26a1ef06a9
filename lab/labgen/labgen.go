package labgen

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Node is one server of the faked architecture, as the backup knows it.
type Node struct {
	Name string
	IP   string   // dp_spool/rsync/<IP> holds its parts
	UID  string   // server uid; "" = "bm-master" for the core, derived from Name otherwise
	Tags []string // server tags; bm/conf is always backed up, listed or not
}

// Core reports whether the node is the bm/core server.
func (n Node) Core() bool { return slices.Contains(n.Tags, "bm/core") }

// DefaultNodes returns the three nodes of the lab (lab/compose): the core
// server, a mail data server and a file server.
func DefaultNodes() []Node {
	return []Node{
		{Name: "core", IP: "172.29.77.11", Tags: []string{"bm/core", "bm/conf", "bm/pgsql", "bm/es"}},
		{Name: "mail", IP: "172.29.77.12", Tags: []string{"mail/imap", "bm/pgsql-data", "bm/conf"}},
		{Name: "files", IP: "172.29.77.13", Tags: []string{"filehosting/data", "mail/archive", "bm/conf"}},
	}
}

// ParseNodes parses the -nodes flag syntax
// "name=ip:tag+tag,name=ip:tag+...", e.g. "core=10.0.0.1:bm/core+bm/es".
func ParseNodes(s string) ([]Node, error) {
	var nodes []Node
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, rest, ok := strings.Cut(item, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("parse node %q: want name=ip:tag+tag", item)
		}
		ip, tags, _ := strings.Cut(rest, ":")
		n := Node{Name: name, IP: ip}
		if tags != "" {
			n.Tags = strings.Split(tags, "+")
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// Options parameterise Generate. Zero values take the lab's defaults.
type Options struct {
	Nodes       []Node // default DefaultNodes()
	ExternalURL string // default "mail.lab.example"
	Domain      string // default "lab.example"
	PGVersion   string // PostgreSQL major in the pgsql parts; default "14" (BlueMind 4.8)
	// Target names the node a per-node fault applies to (no-host-dir,
	// missing-conf-part, stale-view); default: the first non-core node.
	Target string
	// ViewOut is where the stale-view preset writes the target node's own,
	// different view of the store; required by that preset only.
	ViewOut string
}

// Result tells what Generate wrote.
type Result struct {
	Generations []*Generation // the well-formed generation files of the store, by id
	View        []*Generation // stale-view: the generation files of the target's view
	Target      string        // the node the preset's fault applies to
}

var presets = []struct{ name, doc string }{
	{"ok", "three generations of different dates and versions; the newest is complete and all VALID"},
	{"no-generations", "part trees but no generation file"},
	{"no-host-dir", "the target node's dp_spool/rsync/<ip> directory is missing"},
	{"bad-json", "ok plus a generation file that is not valid JSON (the script ignores it)"},
	{"dup-protectionTime", "ok plus a generation with the same protectionTime as the newest"},
	{"missing-es-part", "the newest generation has no bm/es part"},
	{"missing-conf-part", "the newest generation has no bm/conf part for the target node"},
	{"incomplete-generation", "the newest generation was interrupted: its last part is unfinished"},
	{"loopback-dir", "ok plus a dp_spool/rsync/127.0.0.1 directory that the script would match first"},
	{"crash-json", "ok plus a valid JSON generation file without protectionTime (the script crashes)"},
	{"huge-parts", "ok, but the target node's data parts of the newest generation claim 512 TiB (more than any disk)"},
	{"stale-view", "ok, and an older copy of the store for the target node (ViewOut): no newest generation, older files differ"},
}

// Presets returns the names of the scenario presets, in a stable order.
func Presets() []string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.name
	}
	return names
}

// PresetDoc returns a one-line description of a preset, or "" if unknown.
func PresetDoc(name string) string {
	for _, p := range presets {
		if p.name == name {
			return p.doc
		}
	}
	return ""
}

// baseGenerations are the ok preset's generations. 23:30 UTC is a different
// day in Europe/Paris than in America/New_York, so a node's time zone changes
// the menu's dates but must not change the generation chosen.
var baseGenerations = []struct {
	id      int
	at      time.Time
	version VersionInfo
}{
	{310, time.Date(2025, 3, 12, 23, 30, 2, 417e6, time.UTC), VersionInfo{"4", "1", "63100", "4.8.1"}},
	{311, time.Date(2025, 3, 13, 23, 30, 3, 112e6, time.UTC), VersionInfo{"4", "1", "63476", "4.8.2"}},
	{312, time.Date(2025, 3, 14, 23, 30, 2, 417e6, time.UTC), VersionInfo{"4", "1", "63476", "4.8.2"}},
}

// hugePartMB is the size of a huge-parts part: 512 TiB, in MB as
// DataProtect counts, more than any lab or CI disk has free.
const hugePartMB = 512 << 20

// partSizes are realistic proportions kept small (MB) so that the lab's
// disk.space check passes on a developer machine.
var partSizes = map[string]int64{
	"bm/conf": 1, "bm/core": 3, "bm/pgsql": 120, "bm/pgsql-data": 300, "bm/es": 250,
	"mail/imap": 900, "mail/archive": 150, "filehosting/data": 40,
}

// Generate writes the store of preset into out (created if needed; existing
// content is kept, so callers clear it first): generation files, part trees,
// work/ and temp/.
func Generate(out, preset string, opt Options) (*Result, error) {
	if PresetDoc(preset) == "" {
		return nil, fmt.Errorf("unknown preset %q (known: %s)", preset, strings.Join(Presets(), ", "))
	}
	g, err := newGenerator(opt)
	if err != nil {
		return nil, err
	}
	gens := g.baseline()
	newest := gens[len(gens)-1]
	target := g.target
	res := &Result{Target: target.Name}
	skipIP := ""
	var extra []extraFile

	switch preset {
	case "no-host-dir":
		skipIP = target.IP
	case "bad-json":
		extra = append(extra, extraFile{"generation-313.json", `{"id":313,"protectionTime":1742081402417,"blueMind":{"major":"4","minor":`})
	case "dup-protectionTime":
		dup := g.generation(313, time.UnixMilli(newest.ProtectionTime).UTC(), newest.BlueMind)
		gens = append(gens, dup)
	case "missing-es-part":
		newest.Parts = slices.DeleteFunc(newest.Parts, func(p PartGeneration) bool { return p.Tag == "bm/es" })
	case "missing-conf-part":
		newest.Parts = slices.DeleteFunc(newest.Parts, func(p PartGeneration) bool {
			return p.Tag == "bm/conf" && p.Server == target.UID
		})
	case "huge-parts":
		for i, p := range newest.Parts {
			if p.Server == target.UID && p.Tag != "bm/conf" && p.Tag != "bm/core" {
				newest.Parts[i].Size = hugePartMB
			}
		}
	case "incomplete-generation":
		last := &newest.Parts[len(newest.Parts)-1]
		last.End, last.Size, last.Valid = nil, 0, "UNKNOWN"
	case "crash-json":
		extra = append(extra, extraFile{"generation-313.json",
			`{"id":313,"blueMind":{"major":"4","minor":"1","release":"63476","displayName":"4.8.2"},"withWarnings":false,"withErrors":false,"parts":[]}`})
	case "stale-view":
		if opt.ViewOut == "" {
			return nil, errors.New("preset stale-view needs a view directory (ViewOut)")
		}
	}

	write := gens
	if preset == "no-generations" {
		write = nil
	}
	if err := g.writeStore(out, gens, write, skipIP, extra); err != nil {
		return nil, err
	}
	if preset == "loopback-dir" {
		// A copy of the core's newest bm/conf part under 127.0.0.1: the script
		// walks `ip addr` in order, sees lo first, and restores the wrong node.
		for _, p := range newest.Parts {
			if p.Tag == "bm/conf" && p.Server == g.nodes[0].UID {
				if err := g.writePart(filepath.Join(out, "dp_spool/rsync/127.0.0.1"), g.nodes[0], p); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	res.Generations = write
	if preset == "stale-view" {
		// An older copy of the store: the newest generation is missing and
		// the others are as DataProtect rewrote them from its database
		// (displayName = major.minor.release), so no file is identical.
		var view []*Generation
		for _, gen := range gens[:len(gens)-1] {
			c := *gen
			c.BlueMind.DisplayName = c.BlueMind.Major + "." + c.BlueMind.Minor + "." + c.BlueMind.Release
			c.Parts = slices.Clone(gen.Parts)
			view = append(view, &c)
		}
		if err := g.writeStore(opt.ViewOut, gens, view, "", nil); err != nil {
			return nil, err
		}
		res.View = view
	}
	return res, nil
}

type extraFile struct{ name, content string }

type generator struct {
	nodes  []Node
	target Node
	core   Node
	opt    Options
	nextID int
	cert   string // bm_cert.pem of every bm/conf part: one per store
}

func newGenerator(opt Options) (*generator, error) {
	if len(opt.Nodes) == 0 {
		opt.Nodes = DefaultNodes()
	}
	if opt.ExternalURL == "" {
		opt.ExternalURL = "mail.lab.example"
	}
	if opt.Domain == "" {
		opt.Domain = "lab.example"
	}
	if opt.PGVersion == "" {
		opt.PGVersion = "14"
	}
	g := &generator{opt: opt, nextID: 2001}
	var err error
	cores := 0
	for _, n := range opt.Nodes {
		if _, err := netip.ParseAddr(n.IP); err != nil {
			return nil, fmt.Errorf("parse ip of node %s: %w", n.Name, err)
		}
		if n.Core() {
			cores++
			if n.UID == "" {
				n.UID = "bm-master"
			}
			// The core goes first: IServer.allComplete lists it first, and
			// it is the node that writes the generation files.
			g.nodes = append([]Node{n}, g.nodes...)
			continue
		}
		if n.UID == "" {
			n.UID = derivedUID(n.Name)
		}
		g.nodes = append(g.nodes, n)
	}
	if cores != 1 {
		return nil, fmt.Errorf("want exactly one node tagged bm/core, got %d", cores)
	}
	g.core = g.nodes[0]
	// One certificate per store: every node's bm/conf part, and a stale
	// view's, carry the same file, as they would from one architecture.
	if g.cert, err = SelfSignedPEM(opt.ExternalURL, time.Now()); err != nil {
		return nil, err
	}
	for _, n := range g.nodes {
		if (opt.Target == "" && !n.Core()) || n.Name == opt.Target {
			g.target = n
			break
		}
	}
	if g.target.Name == "" {
		if opt.Target != "" {
			return nil, fmt.Errorf("unknown target node %q", opt.Target)
		}
		g.target = g.core
	}
	return g, nil
}

// ServerUID returns the server uid of n in the generated store: its UID, or
// "bm-master" for the core, or the one derived from its name.
func ServerUID(n Node) string {
	switch {
	case n.UID != "":
		return n.UID
	case n.Core():
		return "bm-master"
	}
	return derivedUID(n.Name)
}

// derivedUID makes the uuid-like uid the setup wizard would generate, stable
// for a given node name so that regenerated stores are identical.
func derivedUID(name string) string {
	h := sha256.Sum256([]byte("prapush-lab-server:" + name))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-9" + x[17:20] + "-" + x[20:32]
}

func (g *generator) baseline() []*Generation {
	var gens []*Generation
	for _, b := range baseGenerations {
		gens = append(gens, g.generation(b.id, b.at, b.version))
	}
	return gens
}

// generation builds a complete, VALID generation started at `at`, with
// parts in completion order grouped by server and ids from the global counter.
func (g *generator) generation(id int, at time.Time, v VersionInfo) *Generation {
	gen := &Generation{ID: id, ProtectionTime: at.UnixMilli(), BlueMind: v, Parts: []PartGeneration{}}
	t := gen.ProtectionTime + 1200
	for _, n := range g.nodes {
		for _, tag := range backedUpTags(n) {
			dt, _ := Datatype(tag)
			size := partSizes[tag]
			begin := t
			end := begin + 900 + size*40 // a few seconds, longer for bigger parts
			gen.Parts = append(gen.Parts, PartGeneration{
				ID: g.nextID, GenerationID: id, Begin: begin, End: &end, Size: size,
				Tag: tag, Server: n.UID, Valid: "VALID", Datatype: dt,
			})
			g.nextID++
			t = end + 300
		}
	}
	return gen
}

// backedUpTags lists the tags of n that produce a part: bm/conf first (it is
// always added), then the node's tags that have a DataProtect worker.
func backedUpTags(n Node) []string {
	tags := []string{"bm/conf"}
	for _, t := range n.Tags {
		if _, ok := Datatype(t); ok && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}

func (g *generator) nodeByUID(uid string) (Node, bool) {
	for _, n := range g.nodes {
		if n.UID == uid {
			return n, true
		}
	}
	return Node{}, false
}

// writeStore writes the part trees of every generation in trees, the
// generation files of files, extra files verbatim, and work/ and temp/.
func (g *generator) writeStore(out string, trees, files []*Generation, skipIP string, extra []extraFile) error {
	for _, d := range []string{"work", "temp", "dp_spool/rsync"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return fmt.Errorf("create store: %w", err)
		}
	}
	for _, gen := range trees {
		for _, p := range gen.Parts {
			n, ok := g.nodeByUID(p.Server)
			if !ok || n.IP == skipIP {
				continue
			}
			if err := g.writePart(filepath.Join(out, "dp_spool/rsync", n.IP), n, p); err != nil {
				return err
			}
		}
	}
	for _, gen := range files {
		b, err := gen.Marshal()
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(out, gen.FileName()), string(b), 0o644); err != nil {
			return err
		}
	}
	for _, e := range extra {
		if err := writeFile(filepath.Join(out, e.name), e.content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writePart writes part p of node n under hostDir/<tag>/<id>/, with the
// absolute source paths that rsync --relative keeps.
func (g *generator) writePart(hostDir string, n Node, p PartGeneration) error {
	root := filepath.Join(hostDir, p.Tag, fmt.Sprint(p.ID))
	files := g.payload(n, p)
	if len(files) == 0 {
		return os.MkdirAll(root, 0o755)
	}
	for rel, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, "bm-core.tok") || strings.HasSuffix(rel, "bm_cert.pem") {
			mode = 0o640
		}
		if err := writeFile(filepath.Join(root, rel), content, mode); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) payload(n Node, p PartGeneration) map[string]string {
	const work = "var/backups/bluemind/work/"
	pg := g.opt.PGVersion
	dom := g.opt.Domain
	f := map[string]string{}
	switch p.Tag {
	case "bm/conf":
		etc := work + "conf/etc/"
		f[etc+"bm/bm.ini"] = fmt.Sprintf("[global]\nexternal-url = %s\nexternal-protocol = https\ndbtype = PGSQL\nhost = %s\ndb = bj\nuser = bj\npassword = bj\nport = 5432\nhz-member-address = %s\n",
			g.opt.ExternalURL, g.core.IP, g.core.IP)
		f[etc+"bm/bm-core.tok"] = derivedUID("token:" + g.core.Name)
		f[etc+"bm/server.uid"] = n.UID
		f[etc+"bm/certs/bm_cert.pem"] = g.cert
		f[etc+"bm-node/rsync.excludes"] = "- /var/spool/cyrus/meta/**/cyrus.squat\n"
		f[etc+"postfix/main.cf"] = fmt.Sprintf("myhostname = %s\nmydestination =\nrelayhost =\n", g.opt.ExternalURL)
		if slices.Contains(n.Tags, "mail/imap") {
			f[etc+"imapd.conf"] = "configdirectory: /var/lib/cyrus\npartition-" + partition(dom) + ": /var/spool/cyrus/data/" + partition(dom) + "\n"
			f[etc+"cyrus.conf"] = "START {\n  recover cmd=\"ctl_cyrusdb -r\"\n}\n"
			f[etc+"cyrus-partitions"] = partition(dom) + "\n"
			f[etc+"cyrus-admins"] = "admin0\n"
		}
		if slices.Contains(n.Tags, "bm/es") {
			f[etc+"usr/share/bm-elasticsearch/config/elasticsearch.yml"] = "cluster.name: bluemind-lab\npath.repo: /var/spool/bm-elasticsearch/repo\n"
		}
	case "bm/core":
		f[work+"directory/"+dom+"/announced.version"] = fmt.Sprint(p.GenerationID*10 + 7)
	case "bm/pgsql", "bm/pgsql-data":
		dir := work + strings.TrimPrefix(p.Tag, "bm/") + "/"
		db := map[string]string{"bm/pgsql": "bj", "bm/pgsql-data": "bj-data"}[p.Tag]
		f[dir+"dump.sql"] = fmt.Sprintf("PGDMP lab dump of database %s, generation %d\n", db, p.GenerationID)
		f[dir+"configuration/"+pg+"/main/postgresql.conf"] = "listen_addresses = '*'\nport = 5432\n"
	case "bm/es":
		f["var/spool/bm-elasticsearch/repo/index-0"] = fmt.Sprintf(`{"snapshots":[{"name":"snapshot-es","uuid":"lab-%d"}]}`, p.GenerationID)
	case "mail/imap":
		pt := partition(dom)
		user := fmt.Sprintf("var/spool/cyrus/%%s/%s/domain/%c/%s/a/user/alice/", pt, dom[0], dom)
		f[fmt.Sprintf(user, "data")+"1."] = "From: bob@" + dom + "\nSubject: lab\n\nhello\n"
		f[fmt.Sprintf(user, "meta")+"cyrus.header"] = "\241\002\213\015Cyrus mailbox header\n"
		f["var/lib/cyrus/mailboxes.db"] = "lab mailboxes\n"
	case "filehosting/data":
		f["var/spool/bm-filehosting/1/2/12ab34cd"] = "shared file\n"
	case "mail/archive":
		f["var/spool/bm-hsm/snappy/"+dom+"/alice/1.snappy"] = "archived mail\n"
	}
	return f
}

func partition(domain string) string { return strings.ReplaceAll(domain, ".", "_") }

func writeFile(path, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return fmt.Errorf("write store file: %w", err)
	}
	return nil
}
