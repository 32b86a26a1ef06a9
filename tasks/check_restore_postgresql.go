package tasks

import (
	"slices"
	"strconv"
)

// checkRestorePostgreSQL fails when the PostgreSQL major hard-coded in the
// script has no /etc/postgresql/<N> on a node restoring bm/pgsql or
// bm/pgsql-data (domain §3.1).
func checkRestorePostgreSQL(e *nodeEnv) (Status, string) {
	f := e.Facts
	tags := e.nodeTags()
	if !slices.Contains(tags, "bm/pgsql") && !slices.Contains(tags, "bm/pgsql-data") {
		return Pass, "node restores no PostgreSQL part"
	}
	if !f.ScriptExists {
		return Skip, "no restore script (see restore.script)"
	}
	if len(f.ScriptPGMajors) == 0 {
		return Warn, "no postgresql/<N>/ path found in the script"
	}
	var missing []string
	for _, n := range f.ScriptPGMajors {
		if !slices.Contains(f.PostgresDirs, strconv.Itoa(n)) {
			missing = append(missing, "/etc/postgresql/"+strconv.Itoa(n))
		}
	}
	if len(missing) > 0 {
		have := "none"
		if len(f.PostgresDirs) > 0 {
			have = list(f.PostgresDirs)
		}
		return Fail, "the script needs " + list(missing) + ", /etc/postgresql has " + have
	}
	return Pass, "the script's PostgreSQL " + list(itoas(f.ScriptPGMajors)) + " is installed"
}

func itoa(n int) string { return strconv.Itoa(n) }

func itoas(ns []int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.Itoa(n)
	}
	return out
}
