package tasks

import "strings"

// checkBackupMounted fails when the store lives on / or /var (BlueMind
// refuses to back up there, domain §2.2) and warns on a soft NFS mount,
// which can silently truncate reads under load.
func checkBackupMounted(e *nodeEnv) (Status, string) {
	f := e.Facts
	if !f.StoreIsDir {
		return Skip, "store missing (see backup.present)"
	}
	mp := f.StoreMountPoint
	if mp == "" {
		return Warn, "cannot tell the mount point of " + StoreDir + " (no mount above it in /proc/self/mountinfo)"
	}
	desc := "mounted at " + mp
	if f.MountSource != "" {
		desc += " from " + f.MountSource + " (" + f.MountFSType + ", " + f.MountOptions + ")"
	}
	if mp == "/" || mp == "/var" || mp == "/var/" {
		return Fail, "store is on " + mp + ", expected a dedicated mount"
	}
	if strings.HasPrefix(f.MountFSType, "nfs") && hasOption(f.MountOptions, "soft") {
		return Warn, desc + ": soft NFS mount, hard is safer for a restore"
	}
	return Pass, desc
}

func hasOption(opts, o string) bool {
	for x := range strings.SplitSeq(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}
