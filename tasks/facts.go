package tasks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one framed record of a facts script's output.
type Record struct {
	Key   string
	Value []byte
}

const recordMagic = "@@prapush "

// ParseRecords splits the output of a prapush script into its records:
// each is a header line "@@prapush <key> <len>" followed by exactly len
// bytes and a newline. Bytes outside records (noise from a login shell's
// profile, say) are skipped; a header that promises more bytes than remain,
// or whose value is not followed by a newline, ends the parse with an error.
func ParseRecords(b []byte) ([]Record, error) {
	var out []Record
	for len(b) > 0 {
		i := bytes.Index(b, []byte(recordMagic))
		if i < 0 {
			break
		}
		if i > 0 && b[i-1] != '\n' {
			// Not at the start of a line: noise that happens to contain
			// the magic. Skip past it.
			b = b[i+len(recordMagic):]
			continue
		}
		b = b[i+len(recordMagic):]
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return out, errors.New("parse records: truncated header")
		}
		key, lenStr, ok := strings.Cut(string(b[:nl]), " ")
		if !ok || key == "" {
			return out, fmt.Errorf("parse records: malformed header %q", truncate(string(b[:nl]), 60))
		}
		n, err := strconv.Atoi(lenStr)
		if err != nil || n < 0 {
			return out, fmt.Errorf("parse records: bad length in header %q", truncate(string(b[:nl]), 60))
		}
		b = b[nl+1:]
		if n >= len(b) || b[n] != '\n' {
			return out, fmt.Errorf("parse records: record %q truncated or mis-sized", key)
		}
		out = append(out, Record{Key: key, Value: b[:n:n]})
		b = b[n+1:]
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Facts is what one round trip learns about a node (domain §8.1). Every
// check is a pure function of Facts, the inventory and other nodes' Facts.
type Facts struct {
	Complete bool // the script ran to its end

	UID int // -1 when unknown

	OSID        string
	OSVersionID string

	PythonExists     bool
	PythonExecutable bool
	PythonMajor      int    // 0 when unknown
	PythonOutput     string // what the version probe printed

	PackageManager string    // "dpkg", "rpm" or ""
	Packages       []Package // bm-* packages

	ScriptExists     bool
	ScriptExecutable bool
	ScriptSHA256     string
	ScriptFamily     string // FamilyLegacy, FamilyBM4, FamilyBM4ES, FamilyBM5 or "" (unknown)
	ScriptPGMajors   []int  // from "postgresql/<N>/" in the script

	PostgresDirs []string // entries of /etc/postgresql

	BMIniPresent bool
	ExternalURL  string
	DBHost       string
	TokenPresent bool // bm-core.tok exists and is not empty; its content is never read
	ServerUID    string

	// IPv4 are the node's addresses: in `ip addr` order (the script's)
	// when that order matters, i.e. when more than one of them has a part
	// directory; otherwise in /proc/net/fib_trie's order.
	IPv4 []string

	StoreIsDir       bool
	StoreHasTemp     bool
	StoreMountPoint  string
	MountSource      string
	MountFSType      string
	MountOptions     string
	RsyncDirs        []string // entries of dp_spool/rsync that are directories
	GenerationFiles  []GenFile
	PartDirs         []string // "<ip>/<t1>/<t2>/<id>" under dp_spool/rsync
	RestoreProcesses []string // "pid args" of running bm-pra-restore processes
	RsyncProcesses   []string // "pid args" of rsync processes writing into the store
	LiveRuns         []string // prapush run dirs with a live pid

	DiskAvailMB map[string]int64 // restored path → free MB under it (-1 unknown)

	TZLink   string // readlink /etc/localtime, unless /etc/timezone names its zone
	TZFile   string // /etc/timezone
	TZOffset string // date +%z, when no zone name is known or for a restore plan

	ProbeUID int    // owner uid of this node's probe; -1 when not created
	ProbeErr string // why the probe could not be created
	// The cross-node phase of the same session.
	ProbePhase    int      // last phase marker seen: 1 = probe written, 2 = others looked for
	ProbesSeen    []string // other nodes' probe names seen
	ProbesMissing []string // other nodes' probe names never seen
	ProbeRemoved  bool
	ProbeRmErr    string
	SharedErr     error // the cross-node phase did not complete
	// ReadErr says which facts are missing because the files could not all
	// be read (awk missing, or stopped by a read error); "" when complete.
	ReadErr    string
	LocalDates map[int64]string // protection time (s) → date rendered by the node
	location   *time.Location   // set by ParseFacts
}

// Package is one installed package.
type Package struct {
	Name    string
	Version string
	Status  string // dpkg's db:Status-Abbrev ("ii " when installed)
}

// Installed reports whether the package is installed (not just known).
func (p Package) Installed() bool { return strings.HasPrefix(p.Status, "ii") }

var pgRe = regexp.MustCompile(`postgresql/([0-9]+)/`)

// ParseFacts turns the output of the facts script into Facts. It is lenient:
// missing records leave zero values; an error means the framing is broken,
// and the Facts returned hold what was parsed before it.
func ParseFacts(out []byte) (*Facts, error) {
	recs, perr := ParseRecords(out)
	f := &Facts{UID: -1, ProbeUID: -1, DiskAvailMB: map[string]int64{}}
	var counts = map[string]int{}
	var pendingGen string
	havePending := false
	var dfPaths, datesIn, datesOut []string
	probeOwn, filesDone, procsDone := false, false, false
	awkStatus, procsStatus := "", ""
	for _, r := range recs {
		v := string(r.Value)
		switch r.Key {
		case "end":
			f.Complete = true
		case "uid":
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				f.UID = n
			}
		case "os":
			f.OSID, f.OSVersionID = parseOSRelease(v)
		case "py.exists":
			f.PythonExists = true
		case "py.exec":
			f.PythonExecutable = true
		case "py.major":
			f.PythonOutput = v
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				f.PythonMajor = n
			}
		case "pkg.mgr":
			f.PackageManager = v
		case "pkg.list":
			for line := range strings.SplitSeq(v, "\n") {
				fs := strings.SplitN(line, " ", 3)
				if len(fs) < 2 || !strings.HasPrefix(fs[0], "bm-") {
					continue
				}
				p := Package{Name: fs[0], Version: fs[1]}
				if len(fs) == 3 {
					p.Status = fs[2]
				}
				f.Packages = append(f.Packages, p)
			}
		case "sc.exists":
			f.ScriptExists = true
		case "sc.exec":
			f.ScriptExecutable = true
		case "sc.sha256":
			if fs := strings.Fields(v); len(fs) > 0 && len(fs[0]) == 64 {
				f.ScriptSHA256 = fs[0]
			}
		case "sc.scan":
			for line := range strings.SplitSeq(v, "\n") {
				k, val, _ := strings.Cut(line, " ")
				if k == "pg" {
					if m := pgRe.FindStringSubmatch(val); m != nil {
						if n, err := strconv.Atoi(m[1]); err == nil && !slices.Contains(f.ScriptPGMajors, n) {
							f.ScriptPGMajors = append(f.ScriptPGMajors, n)
						}
					}
					continue
				}
				n, _ := strconv.Atoi(strings.TrimSpace(val))
				counts["sc."+k] = n
			}
			slices.Sort(f.ScriptPGMajors)
		case "pg.dirs":
			f.PostgresDirs = lines(v)
		case "bmini.present":
			f.BMIniPresent = true
		case "bmini.keys":
			for line := range strings.SplitSeq(v, "\n") {
				k, val, ok := strings.Cut(line, "=")
				if !ok {
					continue
				}
				switch strings.TrimSpace(k) {
				case "external-url":
					f.ExternalURL = strings.TrimSpace(val)
				case "host":
					f.DBHost = strings.TrimSpace(val)
				}
			}
		case "tok":
			f.TokenPresent = true
		case "serveruid":
			f.ServerUID = strings.TrimSpace(v)
		case "ipaddr":
			f.IPv4 = ParseIPAddr(v)
		case "store.isdir":
			f.StoreIsDir = true
		case "store.temp":
			f.StoreHasTemp = true
		case "store.mount":
			f.StoreMountPoint = strings.TrimSpace(v)
		case "store.findmnt":
			fs := strings.Fields(firstLine(v))
			if len(fs) > 0 {
				f.MountSource = fs[0]
			}
			if len(fs) > 1 {
				f.MountFSType = fs[1]
			}
			if len(fs) > 2 {
				f.MountOptions = fs[2]
			}
		case "rsync.dir":
			f.RsyncDirs = append(f.RsyncDirs, v)
		case "gen.name":
			if havePending {
				f.GenerationFiles = append(f.GenerationFiles, newGenFile(pendingGen, nil, false))
			}
			pendingGen, havePending = v, true
		case "gen.body":
			if havePending {
				f.GenerationFiles = append(f.GenerationFiles, newGenFile(pendingGen, r.Value, true))
				havePending = false
			}
		case "parts":
			f.PartDirs = lines(v)
		case "proc":
			kind, proc, _ := strings.Cut(v, " ")
			proc = strings.Join(strings.Fields(proc), " ")
			// The /proc scan may run twice (see the script): once each.
			switch {
			case kind == "restore" && !slices.Contains(f.RestoreProcesses, proc):
				f.RestoreProcesses = append(f.RestoreProcesses, proc)
			case kind == "rsync" && !slices.Contains(f.RsyncProcesses, proc):
				f.RsyncProcesses = append(f.RsyncProcesses, proc)
			}
		case "run.live":
			f.LiveRuns = append(f.LiveRuns, v)
		case "df.path":
			dfPaths = append(dfPaths, v)
			f.DiskAvailMB[v] = -1
		case "df":
			// df -P: a header, then one line per argument in order. A
			// line count that does not match means an argument failed
			// and the order cannot be trusted: everything stays unknown.
			ls := lines(v)
			if len(ls) != len(dfPaths)+1 {
				continue
			}
			for i, p := range dfPaths {
				fs := strings.Fields(ls[i+1])
				if len(fs) < 4 {
					continue
				}
				if n, err := strconv.ParseInt(fs[3], 10, 64); err == nil {
					f.DiskAvailMB[p] = n
				}
			}
		case "tz.link":
			f.TZLink = strings.TrimSpace(v)
		case "tz.file":
			f.TZFile = strings.TrimSpace(v)
		case "tz.offset":
			f.TZOffset = strings.TrimSpace(v)
		case "probe.own":
			probeOwn = true
		case "awk":
			awkStatus = strings.TrimSpace(v)
		case "awk.procs":
			procsStatus = strings.TrimSpace(v)
		case "files":
			filesDone = true
		case "procs":
			procsDone = true
		case "probe.uid":
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				f.ProbeUID = n
			}
		case "phase1":
			f.ProbePhase = 1
		case "phase2":
			f.ProbePhase = 2
		case "seen":
			f.ProbesSeen = append(f.ProbesSeen, strings.Fields(v)...)
		case "missing":
			f.ProbesMissing = append(f.ProbesMissing, strings.Fields(v)...)
		case "removed":
			f.ProbeRemoved = true
		case "rmerr":
			f.ProbeRmErr = strings.TrimSpace(v)
			if f.ProbeRmErr == "" {
				f.ProbeRmErr = "the probe is still there"
			}
		case "dates.in":
			datesIn = strings.Fields(v)
		case "dates.out":
			datesOut = lines(v)
		case "probe.err":
			f.ProbeErr = strings.TrimSpace(v)
			if f.ProbeErr == "" {
				f.ProbeErr = "cannot create the probe file"
			}
		}
	}
	if havePending {
		f.GenerationFiles = append(f.GenerationFiles, newGenFile(pendingGen, nil, false))
	}
	switch {
	case counts["sc.bm5"] > 0:
		f.ScriptFamily = FamilyBM5
	case counts["sc.dt_string"] > 0 && counts["sc.es"] > 0:
		f.ScriptFamily = FamilyBM4ES
	case counts["sc.dt_string"] > 0:
		f.ScriptFamily = FamilyBM4
	case counts["sc.tagget"] > 0:
		f.ScriptFamily = FamilyLegacy
	}
	// The node's rendering is used only when it rendered every time.
	if len(datesIn) > 0 && len(datesIn) == len(datesOut) {
		f.LocalDates = map[int64]string{}
		for i, in := range datesIn {
			if t, err := strconv.ParseInt(strings.TrimPrefix(in, "@"), 10, 64); err == nil {
				f.LocalDates[t] = datesOut[i]
			}
		}
	}
	if probeOwn {
		// Owned by the user the script ran as: that user's uid.
		f.ProbeUID = f.UID
		if f.UID < 0 {
			f.ProbeErr = "the probe was created but the user's uid is unknown"
		}
	}
	f.ReadErr = readErr(awkStatus, procsStatus, filesDone, procsDone)
	f.location = f.computeLocation()
	if perr != nil {
		return f, fmt.Errorf("parse facts: %w", perr)
	}
	return f, nil
}

// readErr tells what the facts lack when the script's awk (which reads
// every file and scans /proc) did not complete: awk's exit status, that of
// the second /proc scan, and which of the two parts announced their end.
// Facts from a script without awk records (older captures) have none.
func readErr(awk, procsRetry string, filesDone, procsDone bool) string {
	switch {
	case awk == "":
		return ""
	case awk == "missing":
		return "awk is not installed: the node's files and processes could not be read"
	case !filesDone:
		return "reading the node's files stopped with an error (awk exit status " + awk + "): some facts are missing"
	case !procsDone:
		msg := "the scan of the node's processes failed (awk exit status " + awk
		if procsRetry != "" {
			msg += ", then " + procsRetry
		}
		return msg + "): running restores or backups may be missed"
	}
	return ""
}

// newGenFile builds a GenFile from its bytes; a file that could not be read
// is Ignored, as the script's json.load would fail on it too.
func newGenFile(name string, body []byte, read bool) GenFile {
	sum := sha256.Sum256(body)
	gf := GenFile{Name: name, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	if !read {
		gf.Content = bytes.Clone(body)
		gf.Kind, gf.Err = GenerationIgnored, errors.New("unreadable")
		return gf
	}
	p := parseGenerationCached(sum, body)
	gf.Content, gf.Kind, gf.Err = p.content, p.kind, p.err
	gf.Gen = p.gen.clone()
	return gf
}

// genParses caches the parse of generation files by content: every node of
// an architecture sees the same store, so a 100-node verify would otherwise
// parse (and keep) the same few files a hundred times. The content is
// shared, read-only; each caller gets its own copy of the Generation.
var genParses = struct {
	sync.Mutex
	m     map[[sha256.Size]byte]*genParse
	bytes int
}{m: map[[sha256.Size]byte]*genParse{}}

// genParsesMax bounds the content the cache keeps; past it, it starts over.
const genParsesMax = 16 << 20

type genParse struct {
	content []byte
	gen     *Generation
	kind    GenerationKind
	err     error
}

func parseGenerationCached(sum [sha256.Size]byte, body []byte) *genParse {
	genParses.Lock()
	p := genParses.m[sum]
	genParses.Unlock()
	if p != nil {
		return p
	}
	// A copy: body is a slice of the node's whole facts output, which
	// would otherwise stay in memory for as long as the facts do.
	p = &genParse{content: bytes.Clone(body)}
	p.gen, p.kind, p.err = ParseGeneration(p.content)
	genParses.Lock()
	defer genParses.Unlock()
	if q := genParses.m[sum]; q != nil {
		return q // parsed meanwhile by another node's goroutine
	}
	if genParses.bytes+len(body) > genParsesMax {
		clear(genParses.m)
		genParses.bytes = 0
	}
	genParses.m[sum] = p
	genParses.bytes += len(body)
	return p
}

// ParseIPAddr returns the IPv4 addresses of `ip addr` output in order, the
// way the restore script reads them: every line containing "inet ", the
// word after it up to "/".
func ParseIPAddr(out string) []string {
	var ips []string
	for line := range strings.SplitSeq(out, "\n") {
		i := strings.Index(line, "inet ")
		if i < 0 {
			continue
		}
		rest := strings.TrimLeft(line[i+len("inet "):], " ")
		addr, _, _ := strings.Cut(rest, "/")
		if sp := strings.IndexAny(addr, " \t"); sp >= 0 {
			addr = addr[:sp]
		}
		if addr != "" {
			ips = append(ips, addr)
		}
	}
	return ips
}

// parseOSRelease returns ID and VERSION_ID of an os-release file.
func parseOSRelease(s string) (id, version string) {
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = v
		case "VERSION_ID":
			version = v
		}
	}
	return id, version
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// Location returns the node's time zone: the zoneinfo name behind
// /etc/localtime, else /etc/timezone, else the fixed offset of date +%z
// (right only outside DST changes), else UTC.
func (f *Facts) Location() *time.Location {
	if f.location != nil {
		return f.location
	}
	return f.computeLocation()
}

func (f *Facts) computeLocation() *time.Location {
	loc := time.UTC
	name := ""
	if i := strings.Index(f.TZLink, "zoneinfo/"); i >= 0 {
		name = f.TZLink[i+len("zoneinfo/"):]
	} else if f.TZFile != "" {
		name = f.TZFile
	}
	if l, err := time.LoadLocation(name); name != "" && err == nil {
		loc = l
	} else if len(f.TZOffset) == 5 {
		h, err1 := strconv.Atoi(f.TZOffset[1:3])
		m, err2 := strconv.Atoi(f.TZOffset[3:5])
		if err1 == nil && err2 == nil {
			off := h*3600 + m*60
			if f.TZOffset[0] == '-' {
				off = -off
			}
			loc = time.FixedZone(f.TZOffset, off)
		}
	}
	return loc
}

// MenuLineFor renders generation g's menu line at index as this node
// shows it: with the date the node itself rendered when known, else in the
// node's Location.
func (f *Facts) MenuLineFor(index int, g *Generation) string {
	if d, ok := f.LocalDates[g.Time().Unix()]; ok && d != "" {
		return strconv.Itoa(index) + "\t" + d + "\t" + g.DisplayName + "\tstatus: " + g.StatusText()
	}
	return RenderMenuLine(index, g, f.Location())
}

// LocalPartDirs returns the part dirs "<t1>/<t2>/<id>" under ip.
func (f *Facts) LocalPartDirs(ip string) []string {
	var out []string
	for _, d := range f.PartDirs {
		if rest, ok := strings.CutPrefix(d, ip+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// HasPartDir reports whether dp_spool/rsync/<ip>/<tag>/<id> exists.
func (f *Facts) HasPartDir(ip, tag string, id int) bool {
	return slices.Contains(f.PartDirs, ip+"/"+tag+"/"+strconv.Itoa(id))
}

// ScriptHostIP returns the address the script picks: the first IPv4 in
// `ip addr` order that has a dp_spool/rsync/<ip> directory, or "".
func (f *Facts) ScriptHostIP() string {
	for _, ip := range f.IPv4 {
		if slices.Contains(f.RsyncDirs, ip) {
			return ip
		}
	}
	return ""
}
