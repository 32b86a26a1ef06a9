package tasks

import (
	"strconv"
	"strings"
)

// tagPaths maps a part's tag to where the script restores it.
var tagPaths = map[string]string{
	"mail/imap":        "/var/spool/cyrus",
	"bm/pgsql":         "/var/lib/postgresql",
	"bm/pgsql-data":    "/var/lib/postgresql",
	"bm/es":            "/var/spool/bm-elasticsearch",
	"filehosting/data": "/var/spool/bm-filehosting",
	"mail/archive":     "/var/spool/bm-hsm",
}

// checkDiskSpace warns when the free space under a restored path is less
// than the size of this node's parts restored there. The sizes come from the
// chosen generation, else from the newest loadable one. Paths on one file
// system are compared separately (df does not say which share one).
func checkDiskSpace(e *nodeEnv) (Status, string) {
	f := e.Facts
	g := e.Gen.chosen()
	from := "chosen generation"
	if g == nil {
		g = newestLoadable(f)
		if g == nil {
			return Skip, "no loadable generation to size the restore"
		}
		from = "newest generation " + strconv.Itoa(g.ID)
	}
	need := map[string]int64{}
	for _, p := range nodeParts(f, e.Node.IP.String(), g) {
		if path, ok := tagPaths[p.Tag]; ok {
			need[path] += p.SizeMB
		}
	}
	if len(need) == 0 {
		return Pass, "no data part to restore on this node (" + from + ")"
	}
	var short, ok []string
	for _, path := range restoredPaths {
		n, want := need[path]
		if !want {
			continue
		}
		avail, known := availFor(f, path)
		switch {
		case !known:
			short = append(short, path+": free space unknown, need "+mb(n))
		case avail < n:
			short = append(short, path+": "+mb(avail)+" free, need "+mb(n))
		default:
			ok = append(ok, path+" "+mb(avail)+" free >= "+mb(n))
		}
	}
	if len(short) > 0 {
		return Warn, "not enough free space (" + from + "): " + strings.Join(short, "; ")
	}
	return Pass, strings.Join(ok, "; ") + " (" + from + ")"
}

// availFor finds the free MB the facts recorded for path (the script
// records it under the path, possibly behind a test prefix).
func availFor(f *Facts, path string) (int64, bool) {
	for p, n := range f.DiskAvailMB {
		if (p == path || strings.HasSuffix(p, path)) && n >= 0 {
			return n, true
		}
	}
	return 0, false
}

func mb(n int64) string { return strconv.FormatInt(n, 10) + " MB" }

// newestLoadable returns the loadable generation with the latest
// protectionTime, or nil.
func newestLoadable(f *Facts) *Generation {
	var best *Generation
	for _, gf := range f.GenerationFiles {
		if gf.Kind == GenerationOK && gf.Gen != nil && (best == nil || gf.Gen.ProtectionTime > best.ProtectionTime) {
			best = gf.Gen
		}
	}
	return best
}
