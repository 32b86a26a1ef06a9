package inventory

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxStage bounds a node's stage: a restore has a handful of stages, and the
// bound keeps the core's default stage (the highest other stage + 1) in range.
const MaxStage = 1000

// DefaultKnownHosts is the known_hosts file used when the inventory sets none.
const DefaultKnownHosts = "~/.ssh/known_hosts"

// Load reads and validates the inventory at path. An invalid inventory
// returns an *Error listing every problem; an unreadable file returns the
// error of os.ReadFile, wrapped.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse validates the inventory held in data; path names it in problems and
// in the result. On success every default is resolved (see Node and SSH) and
// the result holds exactly one core node, unique node names and IPs, and
// stages that restore the core node alone and last. Otherwise the error is
// an *Error with every problem found, ordered by line.
func Parse(path string, data []byte) (*Inventory, error) {
	src := string(data)
	var doc map[string]any
	md, err := toml.Decode(src, &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The toml package reports line 0 for some errors at the very end
			// of the input; a location must point into the file.
			line := min(max(pe.Position.Line, 1), strings.Count(src, "\n")+1)
			return nil, &Error{Problems: []Problem{{
				File: path, Line: line, Col: max(pe.Position.Col, 1), Key: pe.LastKey, Msg: pe.Message,
			}}}
		}
		return nil, &Error{Problems: []Problem{{File: path, Line: 1, Msg: err.Error()}}}
	}
	sum := sha256.Sum256(data)
	c := &checker{file: path, lines: keyLines(src, md)}
	inv := c.inventory(doc)
	if len(c.problems) > 0 {
		sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Line < c.problems[j].Line })
		return nil, &Error{Problems: c.problems}
	}
	inv.Path = path
	inv.SHA256 = hex.EncodeToString(sum[:])
	return inv, nil
}

// checker walks the decoded document, collecting problems instead of
// stopping at the first.
type checker struct {
	file     string
	lines    map[string]int
	problems []Problem
}

// lineOf returns the line defining path, or that of its nearest enclosing
// table when the key is absent (a missing required key points at its table).
func (c *checker) lineOf(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 1
}

func (c *checker) addf(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: c.file, Line: c.lineOf(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

// table is a decoded TOML table being read; reading a key marks it known, so
// that whatever is left over is reported as unknown.
type table struct {
	path  string
	m     map[string]any
	known map[string]bool
}

func newTable(path string, m map[string]any) *table {
	return &table{path: path, m: m, known: map[string]bool{}}
}

func (t *table) key(k string) string { return joinPath(t.path, k) }

// get returns the value of k and whether it is set.
func (t *table) get(k string) (any, bool) {
	t.known[k] = true
	v, ok := t.m[k]
	return v, ok
}

func (c *checker) unknownKeys(t *table) {
	var unknown []string
	for k := range t.m {
		if !t.known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		c.addf(t.key(k), "unknown key")
	}
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any, []any:
		return "an array"
	default:
		return "a date/time"
	}
}

func (c *checker) wrongType(path string, v any, want string) {
	c.addf(path, "must be %s, not %s", want, tomlType(v))
}

// str reads an optional string; ok reports that it is set and well typed.
func (c *checker) str(t *table, k string) (s string, ok bool) {
	v, set := t.get(k)
	if !set {
		return "", false
	}
	if s, isStr := v.(string); isStr {
		return s, true
	}
	c.wrongType(t.key(k), v, "a string")
	return "", false
}

// required reads a string that must be set and not empty.
func (c *checker) required(t *table, k string) string {
	if _, set := t.m[k]; !set {
		t.known[k] = true
		c.addf(t.key(k), "required key is missing")
		return ""
	}
	s, ok := c.str(t, k)
	if ok && strings.TrimSpace(s) == "" {
		c.addf(t.key(k), "must not be empty")
		return ""
	}
	return s
}

func (c *checker) boolean(t *table, k string) (b, ok bool) {
	v, set := t.get(k)
	if !set {
		return false, false
	}
	if b, isBool := v.(bool); isBool {
		return b, true
	}
	c.wrongType(t.key(k), v, "a boolean")
	return false, false
}

func (c *checker) integer(t *table, k string) (n int64, ok bool) {
	v, set := t.get(k)
	if !set {
		return 0, false
	}
	if n, isInt := v.(int64); isInt {
		return n, true
	}
	c.wrongType(t.key(k), v, "an integer")
	return 0, false
}

// strings reads an array of non-empty strings.
func (c *checker) strings(t *table, k string) (list []string, ok bool) {
	v, set := t.get(k)
	if !set {
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		c.wrongType(t.key(k), v, "an array of strings")
		return nil, false
	}
	list = make([]string, 0, len(arr))
	ok = true
	for i, e := range arr {
		s, isStr := e.(string)
		switch {
		case !isStr:
			c.wrongType(indexPath(t.key(k), i), e, "a string")
			ok = false
		case strings.TrimSpace(s) == "":
			c.addf(indexPath(t.key(k), i), "must not be empty")
			ok = false
		default:
			list = append(list, s)
		}
	}
	return list, ok
}

// duration reads a positive Go duration written as a string ("90s", "4h").
func (c *checker) duration(t *table, k string) (time.Duration, bool) {
	s, ok := c.str(t, k)
	if !ok {
		return 0, false
	}
	return c.parseDuration(t.key(k), s)
}

func (c *checker) parseDuration(path, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		c.addf(path, "invalid duration %q (e.g. \"90s\", \"30m\", \"4h\")", s)
		return 0, false
	}
	if d <= 0 {
		c.addf(path, "duration %q must be positive", s)
		return 0, false
	}
	return d, true
}

// subTable reads an optional table.
func (c *checker) subTable(t *table, k string) (*table, bool) {
	v, set := t.get(k)
	if !set {
		return newTable(t.key(k), nil), false
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.wrongType(t.key(k), v, "a table")
		return newTable(t.key(k), nil), false
	}
	return newTable(t.key(k), m), true
}

func (c *checker) absPath(t *table, k string) (string, bool) {
	s, ok := c.str(t, k)
	if !ok {
		return "", false
	}
	if !strings.HasPrefix(s, "/") {
		c.addf(t.key(k), "must be an absolute path, not %q", s)
		return "", false
	}
	return s, true
}

func (c *checker) inventory(doc map[string]any) *Inventory {
	root := newTable("", doc)
	inv := &Inventory{}

	arch, _ := c.subTable(root, "architecture")
	inv.Architecture = c.architecture(arch)

	sshT, _ := c.subTable(root, "ssh")
	inv.SSH = c.ssh(sshT, SSH{
		User:           DefaultUser,
		Port:           DefaultPort,
		KnownHosts:     []string{DefaultKnownHosts},
		HostKeyPolicy:  HostKeyStrict,
		SSHConfig:      DefaultSSHConfig,
		ConnectTimeout: DefaultConnectTimeout,
		Keepalive:      DefaultKeepalive,
	})
	c.unknownKeys(sshT)

	inv.Nodes = c.nodes(root, inv)
	c.unknownKeys(root)
	return inv
}

func (c *checker) architecture(t *table) Architecture {
	a := Architecture{
		Name:            c.required(t, "name"),
		ExternalURL:     c.required(t, "external_url"),
		BlueMindVersion: c.required(t, "bluemind_version"),
		RestoreScript:   DefaultRestoreScript,
		Python:          DefaultPython,
	}
	if s, ok := c.str(t, "os"); ok {
		a.OS = s
	}
	if s, ok := c.absPath(t, "restore_script"); ok {
		a.RestoreScript = s
	}
	if s, ok := c.absPath(t, "python"); ok {
		a.Python = s
	}
	if d, ok := c.duration(t, "rto"); ok {
		a.RTO = d
	}
	c.unknownKeys(t)
	return a
}

// ssh applies the [ssh] keys set in t over base. It serves the [ssh] table
// (base = the spec's defaults) and each node (base = the [ssh] values).
func (c *checker) ssh(t *table, base SSH) SSH {
	s := base
	// Nodes get their own slices: one node's settings never alias another's.
	s.IdentityFiles = slices.Clone(base.IdentityFiles)
	s.KnownHosts = slices.Clone(base.KnownHosts)
	if v, ok := c.str(t, "user"); ok {
		if v == "" || strings.ContainsAny(v, " \t\r\n@:") {
			c.addf(t.key("user"), "invalid user %q", v)
		} else {
			s.User = v
		}
	}
	if n, ok := c.integer(t, "port"); ok {
		if n < 1 || n > 65535 {
			c.addf(t.key("port"), "port %d out of range 1..65535", n)
		} else {
			s.Port = int(n)
		}
	}
	if list, ok := c.strings(t, "identity_files"); ok {
		s.IdentityFiles = list
	}
	if list, ok := c.strings(t, "known_hosts"); ok {
		if len(list) == 0 {
			list = []string{DefaultKnownHosts}
		}
		s.KnownHosts = list
	}
	if v, ok := c.str(t, "host_key_policy"); ok {
		switch p := HostKeyPolicy(v); p {
		case HostKeyStrict, HostKeyAcceptNew, HostKeyPinned:
			s.HostKeyPolicy = p
		default:
			c.addf(t.key("host_key_policy"), "must be \"strict\", \"accept-new\" or \"pinned\", not %q", v)
		}
	}
	if v, ok := c.str(t, "jump"); ok {
		if err := checkJump(v); err != nil {
			c.addf(t.key("jump"), "%v", err)
		} else {
			s.Jump = v
		}
	}
	// An explicit ssh_config = "" turns ssh_config off: absent and empty differ.
	if v, ok := c.str(t, "ssh_config"); ok {
		s.SSHConfig = v
	}
	if v, ok := c.str(t, "become"); ok {
		switch b := Become(v); b {
		case BecomeNone, BecomeSudo:
			s.Become = b
		default:
			c.addf(t.key("become"), "must be \"\" or \"sudo\", not %q", v)
		}
	}
	if d, ok := c.duration(t, "connect_timeout"); ok {
		s.ConnectTimeout = d
	}
	if d, ok := c.duration(t, "keepalive"); ok {
		s.Keepalive = d
	}
	return s
}

// checkJump validates a ProxyJump list: [user@]host[:port], comma separated.
func checkJump(jump string) error {
	if jump == "" {
		return nil
	}
	for _, hop := range strings.Split(jump, ",") {
		if err := checkHop(hop); err != nil {
			return fmt.Errorf("invalid jump host %q: %w (want [user@]host[:port], comma separated)", hop, err)
		}
	}
	return nil
}

func checkHop(hop string) error {
	if hop == "" {
		return errors.New("empty hop")
	}
	if strings.ContainsFunc(hop, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
		return errors.New("space, control character or slash")
	}
	hostport := hop
	if i := strings.LastIndexByte(hop, '@'); i >= 0 {
		if i == 0 || strings.ContainsAny(hop[:i], "@:") {
			return errors.New("bad user")
		}
		hostport = hop[i+1:]
	}
	host := hostport
	if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1] // bracketed IPv6 without a port
	} else if strings.HasPrefix(hostport, "[") || strings.Count(hostport, ":") == 1 {
		h, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return errors.New("bad host:port")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("bad port")
		}
		host = h
	} else if strings.Contains(hostport, ":") {
		return errors.New("an IPv6 address must be written [addr]:port")
	}
	// A leading "-" would read as an option to any ssh(1) it is handed to.
	if host == "" || strings.HasPrefix(host, "-") || strings.HasPrefix(hop, "-") || strings.ContainsAny(host, "[]@") {
		return errors.New("bad host")
	}
	return nil
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// checkHostKey checks the SHA256 fingerprint form ssh-keygen -l prints.
func checkHostKey(s string) error {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return errors.New("must be an SSH fingerprint \"SHA256:<base64>\" (ssh-keygen -lf)")
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(raw) != sha256.Size {
		return errors.New("is not a SHA256 fingerprint: want \"SHA256:\" and 43 base64 characters")
	}
	return nil
}

// nodeMeta keeps what stage resolution needs besides the Node.
type nodeMeta struct {
	key      string // "nodes[i]"
	stageSet bool   // stage written in the file, not defaulted
}

func (c *checker) nodes(root *table, inv *Inventory) []Node {
	v, set := root.get("nodes")
	if !set {
		c.addf("nodes", "no nodes: add one [[nodes]] table per server")
		return nil
	}
	// Keys keep the index of the element in the file, so that lines match
	// even when some elements of an inline array are not tables.
	type elem struct {
		key string
		m   map[string]any
	}
	var elems []elem
	switch arr := v.(type) {
	case []map[string]any:
		for i, m := range arr {
			elems = append(elems, elem{indexPath("nodes", i), m})
		}
	case []any:
		for i, e := range arr {
			m, ok := e.(map[string]any)
			if !ok {
				c.wrongType(indexPath("nodes", i), e, "a table")
				continue
			}
			elems = append(elems, elem{indexPath("nodes", i), m})
		}
	default:
		c.wrongType("nodes", v, "an array of tables ([[nodes]])")
		return nil
	}
	if len(elems) == 0 {
		c.addf("nodes", "no nodes: add one [[nodes]] table per server")
		return nil
	}

	nodes := make([]Node, 0, len(elems))
	metas := make([]nodeMeta, 0, len(elems))
	byName := map[string]int{}
	byIP := map[netip.Addr]int{}
	for i, e := range elems {
		key := e.key
		n, meta := c.node(newTable(key, e.m), inv)
		meta.key = key
		// Names differing only in case are duplicates too: they name report
		// files, which would collide on a case-insensitive file system.
		if n.Name != "" {
			if j, dup := byName[strings.ToLower(n.Name)]; dup {
				c.addf(joinPath(key, "name"), "duplicate name %q (also at line %d)", nodes[j].Name, nodes[j].Line)
			} else {
				byName[strings.ToLower(n.Name)] = i
			}
		}
		if n.IP.IsValid() {
			if j, dup := byIP[n.IP]; dup {
				c.addf(joinPath(key, "ip"), "duplicate ip %s (also node %s, line %d)", n.IP, label(nodes[j], metas[j]), nodes[j].Line)
			} else {
				byIP[n.IP] = i
			}
		}
		nodes = append(nodes, n)
		metas = append(metas, meta)
	}
	c.stages(nodes, metas)
	return nodes
}

func (c *checker) node(t *table, inv *Inventory) (Node, nodeMeta) {
	n := Node{
		Line:          c.lineOf(t.path),
		RestoreScript: inv.Architecture.RestoreScript,
		Python:        inv.Architecture.Python,
	}
	var meta nodeMeta

	if name := c.required(t, "name"); name != "" {
		if !nodeName.MatchString(name) || name == "." || name == ".." {
			c.addf(t.key("name"), "invalid name %q: use letters, digits, '.', '_' and '-' (it names files)", name)
		} else {
			n.Name = name
		}
	}
	if s := c.required(t, "ip"); s != "" {
		ip, err := netip.ParseAddr(s)
		switch {
		case err != nil || !ip.Is4():
			c.addf(t.key("ip"), "invalid ip %q: want the IPv4 address the backup knows this node by", s)
		case ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			c.addf(t.key("ip"), "ip %s cannot be a node's address", ip)
		default:
			n.IP = ip
			n.Address = ip.String()
		}
	}
	if s, ok := c.str(t, "address"); ok {
		if strings.TrimSpace(s) == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			c.addf(t.key("address"), "invalid address %q", s)
		} else {
			n.Address = s
		}
	}
	n.Core, _ = c.boolean(t, "core")
	if tags, ok := c.strings(t, "tags"); ok {
		n.Tags = tags
	}
	if st, ok := c.integer(t, "stage"); ok {
		if st < 1 || st > MaxStage {
			c.addf(t.key("stage"), "stage %d out of range 1..%d", st, MaxStage)
		} else {
			n.Stage = int(st)
			meta.stageSet = true
		}
	}
	if st, ok := c.subTable(t, "step_timeouts"); ok {
		n.StepTimeouts = make(map[string]time.Duration, len(st.m))
		steps := make([]string, 0, len(st.m))
		for step := range st.m {
			steps = append(steps, step)
		}
		sort.Strings(steps)
		for _, step := range steps {
			if strings.TrimSpace(step) == "" {
				c.addf(st.key(step), "empty step description")
				continue
			}
			if d, ok := c.duration(st, step); ok {
				n.StepTimeouts[step] = d
			}
		}
	}
	if s, ok := c.absPath(t, "restore_script"); ok {
		n.RestoreScript = s
	}
	if s, ok := c.absPath(t, "python"); ok {
		n.Python = s
	}
	n.SSH = c.ssh(t, inv.SSH)
	hostKey, hkSet := c.str(t, "host_key")
	switch {
	case hkSet:
		if err := checkHostKey(hostKey); err != nil {
			c.addf(t.key("host_key"), "%v", err)
		} else if n.SSH.HostKeyPolicy != HostKeyPinned {
			// A key that is silently not checked would give false confidence.
			c.addf(t.key("host_key"), "is only used with host_key_policy = \"pinned\" (this node's policy is %q)", n.SSH.HostKeyPolicy)
		} else {
			n.HostKey = hostKey
		}
	case n.SSH.HostKeyPolicy == HostKeyPinned:
		c.addf(t.key("host_key"), "required with host_key_policy = \"pinned\"")
	}
	c.unknownKeys(t)
	return n, meta
}

// label names a node in a problem: by name, or by key when the name is invalid.
func label(n Node, m nodeMeta) string {
	if n.Name != "" {
		return strconv.Quote(n.Name)
	}
	return m.key
}

// stages resolves default stages and enforces the safe order: the core node
// alone, after every other node.
func (c *checker) stages(nodes []Node, metas []nodeMeta) {
	var cores []int
	for i, n := range nodes {
		if n.Core {
			cores = append(cores, i)
		}
	}
	switch {
	case len(cores) == 0:
		if len(nodes) > 0 {
			c.addf("nodes", "no node has core = true: exactly one node (the bm/core server) must")
		}
	case len(cores) > 1:
		first := nodes[cores[0]]
		for _, i := range cores[1:] {
			c.addf(joinPath(metas[i].key, "core"), "several core nodes: %s (line %d) is core already; exactly one node must be", label(first, metas[cores[0]]), first.Line)
		}
	}

	maxOther := 0
	for i := range nodes {
		if nodes[i].Core {
			continue
		}
		if !metas[i].stageSet {
			nodes[i].Stage = 1
		}
		maxOther = max(maxOther, nodes[i].Stage)
	}
	for _, ci := range cores {
		core := &nodes[ci]
		if !metas[ci].stageSet {
			core.Stage = maxOther + 1
			continue
		}
		key := joinPath(metas[ci].key, "stage")
		for i, n := range nodes {
			if i != ci && !n.Core && n.Stage == core.Stage {
				c.addf(key, "the core node must be alone in its stage: stage %d also holds %s (line %d)", core.Stage, label(n, metas[i]), n.Line)
				break
			}
		}
		if core.Stage < maxOther {
			c.addf(key, "the core node must be restored last: stage %d comes before stage %d of other nodes", core.Stage, maxOther)
		}
	}
}
