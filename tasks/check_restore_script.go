package tasks

import "slices"

// checkRestoreScript fails when the script is missing or not executable,
// or when a bm5 script (cyrus restore replaced by a no-op) must restore
// mail/imap or mail/archive; it reports the family detected.
func checkRestoreScript(e *nodeEnv) (Status, string) {
	f := e.Facts
	sc := e.Node.RestoreScript
	if sc == "" {
		sc = e.Arch.RestoreScript
	}
	switch {
	case !f.ScriptExists:
		return Fail, sc + " is missing"
	case !f.ScriptExecutable:
		return Fail, sc + " is not executable"
	}
	sum := f.ScriptSHA256
	if len(sum) > 12 {
		sum = sum[:12]
	}
	desc := "family " + f.ScriptFamily + ", sha256 " + sum
	if f.ScriptFamily == "" {
		return Warn, "family not recognised (sha256 " + sum + "): the menu layout and output cannot be predicted"
	}
	if f.ScriptFamily == FamilyBM5 {
		tags := e.nodeTags()
		for _, t := range []string{"mail/imap", "mail/archive"} {
			if slices.Contains(tags, t) {
				return Fail, desc + ": this family does not restore " + t + ", which this node holds"
			}
		}
	}
	return Pass, desc
}
