package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// runLockName is the lock file of a run's report directory. Whoever holds it
// follows the run (restore or attach): two followers would both append to
// the node logs, overwrite each other's state.json, and could answer a menu
// twice. The kernel releases the lock when the process ends, however it
// ends, so a killed workstation never leaves a stale lock behind.
const runLockName = ".follow.lock"

// errRunFollowed means another prapush on this workstation follows the run.
var errRunFollowed = errors.New("the run is already followed by another prapush on this workstation")

// lockRun takes the run's lock without waiting. The returned func releases
// it; the caller keeps it for as long as it follows the run.
func lockRun(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, runLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock run: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &exitError{code: exitBusy, err: fmt.Errorf("%s: %w (see prapush status)", dir, errRunFollowed)}
		}
		return nil, fmt.Errorf("lock run: %w", err)
	}
	return func() { f.Close() }, nil
}
