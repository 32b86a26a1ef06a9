package tasks

import "strings"

// checkBlueMindVersion fails when an installed bm-* package's version is
// not the inventory's, and warns when the chosen generation's displayName
// is a different x.y.z release.
func checkBlueMindVersion(e *nodeEnv) (Status, string) {
	want := e.Arch.BlueMindVersion
	f := e.Facts
	var installed []Package
	for _, p := range f.Packages {
		if p.Installed() || p.Status == "" {
			installed = append(installed, p)
		}
	}
	if len(installed) == 0 {
		return Fail, "no bm-* package installed, expected " + want
	}
	var wrong []string
	names := map[string]bool{}
	for _, p := range installed {
		names[p.Name] = true
		if !VersionMatches(p.Version, want) {
			wrong = append(wrong, p.Name+" "+p.Version)
		}
	}
	if len(wrong) > 0 {
		return Fail, "installed " + list(wrong) + ", expected " + want
	}
	var absent []string
	for _, n := range requiredPackages(e.Node.Core) {
		if !names[n] {
			absent = append(absent, n)
		}
	}
	if len(absent) > 0 {
		return Fail, "missing package(s) " + list(absent) + " (version " + want + " otherwise)"
	}
	msg := itoa(len(installed)) + " bm-* package(s) at " + installed[0].Version + ", expected " + want
	if g := e.Gen.chosen(); g != nil && IsRelease(g.DisplayName) && g.DisplayName != want {
		return Warn, msg + "; but the chosen generation was made by " + g.DisplayName
	}
	return Pass, msg
}

func requiredPackages(core bool) []string {
	if core {
		return []string{"bm-node", "bm-conf", "bm-core"}
	}
	return []string{"bm-node", "bm-conf"}
}

// VersionMatches reports whether an installed package version is the
// BlueMind release want: equal, or want followed by '.', '-', '+' or '~'
// (deb versions are "<release>.<build>").
func VersionMatches(installed, want string) bool {
	if want == "" {
		return false
	}
	rest, ok := strings.CutPrefix(installed, want)
	if !ok {
		return false
	}
	return rest == "" || strings.ContainsRune(".-+~", rune(rest[0]))
}
