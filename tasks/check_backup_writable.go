package tasks

import "strconv"

// checkBackupWritable fails when root cannot create and remove a probe file
// in the store's temp/, or when the probe is not owned by uid 0: with
// root_squash the restore, running as root, cannot read root-owned data.
func checkBackupWritable(e *nodeEnv) (Status, string) {
	f := e.Facts
	switch {
	case !f.StoreIsDir:
		return Skip, "store missing (see backup.present)"
	case f.ProbeErr != "":
		return Fail, "cannot create a probe in " + StoreDir + "/temp as root: " + f.ProbeErr
	case f.ProbeUID < 0:
		return Skip, "no probe written (no run id)"
	case f.ProbeUID != 0:
		return Fail, "probe owned by uid " + strconv.Itoa(f.ProbeUID) + ", expected 0 (root_squash on the export?)"
	case f.ProbeRmErr != "":
		return Fail, "cannot remove the probe: " + f.ProbeRmErr
	case !f.ProbeRemoved:
		return Fail, "probe not confirmed removed"
	}
	return Pass, "probe created as uid 0 and removed"
}
