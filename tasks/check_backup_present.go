package tasks

// checkBackupPresent fails when the store is missing or not a directory:
// the script exits 1 with "/var/backups/bluemind must exists!".
func checkBackupPresent(e *nodeEnv) (Status, string) {
	if !e.Facts.StoreIsDir {
		return Fail, StoreDir + " is missing or not a directory, expected the backup store"
	}
	return Pass, StoreDir + " is a directory"
}
