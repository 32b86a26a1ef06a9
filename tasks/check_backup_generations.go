package tasks

// checkBackupGenerations fails when a generation file would crash the
// script (valid JSON without protectionTime, withErrors or
// blueMind.displayName) or when there is none (the script then exits 0
// having done nothing); it warns for each file the script ignores.
func checkBackupGenerations(e *nodeEnv) (Status, string) {
	f := e.Facts
	if !f.StoreIsDir {
		return Skip, "store missing (see backup.present)"
	}
	if len(f.GenerationFiles) == 0 {
		return Fail, "no generation-*.json in " + StoreDir + ", expected at least one"
	}
	var crash, ignored []string
	ok := 0
	for _, g := range f.GenerationFiles {
		switch g.Kind {
		case GenerationCrash:
			crash = append(crash, g.Name+" ("+errText(g.Err)+")")
		case GenerationIgnored:
			ignored = append(ignored, g.Name+" ("+errText(g.Err)+")")
		default:
			ok++
		}
	}
	if len(crash) > 0 {
		return Fail, "the script would crash on " + list(crash)
	}
	if ok == 0 {
		return Fail, "no loadable generation file; the script would ignore " + list(ignored)
	}
	if len(ignored) > 0 {
		return Warn, itoa(ok) + " loadable file(s); the script ignores " + list(ignored)
	}
	return Pass, itoa(ok) + " generation file(s), all loadable"
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
