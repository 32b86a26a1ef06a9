package tasks

import "strings"

// checkBackupShared fails when this node does not see the probe of every
// other node (looked for several times: NFS caches attributes), i.e. the
// nodes do not share one store.
func checkBackupShared(e *nodeEnv) (Status, string) {
	f := e.Facts
	switch {
	case !f.StoreIsDir:
		return Skip, "store missing (see backup.present)"
	case f.ProbeUID < 0:
		return Skip, "this node wrote no probe (see backup.writable)"
	case f.SharedErr != nil:
		return Fail, "cannot look for other nodes' probes: " + f.SharedErr.Error()
	}
	var names []string
	for _, p := range f.ProbesMissing {
		names = append(names, probeOwner(p))
	}
	if len(names) > 0 {
		return Fail, "does not see the probes of " + list(names) + ", expected one store shared by every node"
	}
	if len(f.ProbesSeen) == 0 {
		return Pass, "no other node wrote a probe to compare with"
	}
	return Pass, "sees the probes of the other " + itoa(len(f.ProbesSeen)) + " node(s)"
}

// probeOwner returns the node name at the end of a probe file name.
func probeOwner(p string) string {
	if i := strings.LastIndexByte(p, '-'); i >= 0 {
		return p[i+1:]
	}
	return p
}
