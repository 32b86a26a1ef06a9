package tasks

import (
	"sort"
	"strings"
)

// checkOSRelease fails when the node's "<ID> <VERSION_ID>" is not the
// inventory's os (when set), and warns when the nodes differ from each
// other (the procedure asks for identical reinstalls).
func checkOSRelease(e *nodeEnv) (Status, string) {
	got := osString(e.Facts)
	if e.Facts.OSID == "" {
		return Fail, "no ID in /etc/os-release"
	}
	if want := e.Arch.OS; want != "" && !strings.EqualFold(got, want) {
		return Fail, "os is " + got + ", expected " + want
	}
	var diff []string
	for _, o := range e.others() {
		if s := osString(o.Facts); !strings.EqualFold(s, got) {
			diff = append(diff, o.Node.Name+"="+s)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		return Warn, "os is " + got + " but other nodes differ: " + list(diff)
	}
	return Pass, "os is " + got
}

func osString(f *Facts) string { return f.OSID + " " + f.OSVersionID }
