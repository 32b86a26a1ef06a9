package tasks

// checkBlueMindInstalled fails when the setup wizard has not run: no
// bm.ini with external-url and host, or no non-empty bm-core.tok. A
// non-core node without /etc/bm/server.uid only warns (not registered).
func checkBlueMindInstalled(e *nodeEnv) (Status, string) {
	f := e.Facts
	var missing []string
	if !f.BMIniPresent {
		missing = append(missing, "/etc/bm/bm.ini")
	} else {
		if f.ExternalURL == "" {
			missing = append(missing, "external-url in bm.ini")
		}
		if f.DBHost == "" {
			missing = append(missing, "host in bm.ini")
		}
	}
	if !f.TokenPresent {
		missing = append(missing, "non-empty /etc/bm/bm-core.tok")
	}
	if len(missing) > 0 {
		return Fail, "setup wizard not run: missing " + list(missing)
	}
	if !e.Node.Core && f.ServerUID == "" {
		return Warn, "bm.ini and bm-core.tok present, but no /etc/bm/server.uid (node not registered by the core?)"
	}
	return Pass, "bm.ini (external-url, host) and bm-core.tok present"
}
