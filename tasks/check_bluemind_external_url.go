package tasks

// checkBlueMindExternalURL fails when bm.ini's external-url is not the
// inventory's.
func checkBlueMindExternalURL(e *nodeEnv) (Status, string) {
	f := e.Facts
	want := e.Arch.ExternalURL
	if !f.BMIniPresent {
		return Skip, "no /etc/bm/bm.ini (see bluemind.installed)"
	}
	if f.ExternalURL != want {
		return Fail, "external-url is " + quoteOrNone(f.ExternalURL) + ", expected " + want
	}
	return Pass, "external-url is " + want
}

func quoteOrNone(s string) string {
	if s == "" {
		return "unset"
	}
	return "\"" + s + "\""
}
