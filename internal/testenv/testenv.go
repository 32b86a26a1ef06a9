// Package testenv holds the test-only rules shared by every package's tests.
package testenv

import (
	"os"
	"testing"
)

// DisallowSkip reports whether skipping is forbidden (CI sets
// PRAPUSH_TEST_DISALLOW_SKIP=1 so that a missing sshd or Docker engine fails
// the run instead of hiding tests).
func DisallowSkip() bool { return os.Getenv("PRAPUSH_TEST_DISALLOW_SKIP") == "1" }

// SkipOrFail skips the test with reason, or fails it when skipping is
// disallowed.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if DisallowSkip() {
		t.Fatalf("required test environment missing (PRAPUSH_TEST_DISALLOW_SKIP=1): %s", reason)
	}
	t.Skip(reason)
}
