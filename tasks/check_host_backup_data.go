package tasks

import "slices"

// checkHostBackupData fails when dp_spool/rsync/<ip> is missing, or when
// another local address earlier in `ip addr` order (127.0.0.1 first) has a
// directory: the script takes the first match (domain §3.2).
func checkHostBackupData(e *nodeEnv) (Status, string) {
	f := e.Facts
	if !f.StoreIsDir {
		return Skip, "store missing (see backup.present)"
	}
	ip := e.Node.IP.String()
	if !slices.Contains(f.RsyncDirs, ip) {
		return Fail, "dp_spool/rsync/" + ip + " missing, expected the node's backup data"
	}
	if got := f.ScriptHostIP(); got != ip {
		if got == "" {
			return Fail, "the script would not find " + ip + " among the node's addresses " + list(f.IPv4)
		}
		return Fail, "the script would pick dp_spool/rsync/" + got + " (earlier in ip addr order), expected " + ip
	}
	return Pass, "dp_spool/rsync/" + ip + " present and first matched"
}
