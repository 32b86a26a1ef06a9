package tasks

// checkBackupIdle fails when an rsync writing into the store runs on the
// node: a DataProtect backup is in progress. (The core's backup task in the
// local API is not queried: that needs the API token, see the report.)
func checkBackupIdle(e *nodeEnv) (Status, string) {
	if p := e.Facts.RsyncProcesses; len(p) > 0 {
		return Fail, "a backup is running (rsync into the store): " + list(p)
	}
	return Pass, "no rsync writing into the store"
}
