package tasks

// checkRestoreIdle fails when a bm-pra-restore.py process or a live prapush
// run is already on the node.
func checkRestoreIdle(e *nodeEnv) (Status, string) {
	f := e.Facts
	if len(f.RestoreProcesses) > 0 {
		return Fail, "a restore is running: " + list(f.RestoreProcesses)
	}
	if len(f.LiveRuns) > 0 {
		return Fail, "a prapush run is live: " + list(f.LiveRuns)
	}
	return Pass, "no restore running"
}
