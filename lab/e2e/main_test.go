// Package e2e runs the real prapush binary, and real OpenSSH, against the lab
// (lab/lab.sh): container nodes with their own IPs, sshd, the fake BlueMind
// node and one shared backup store. Faults are injected for real (read-only
// mounts, stopped containers, changed host keys, a running rsync...).
//
// Run: go test -count=1 ./lab/e2e/ (builds the images on first use; needs
// Docker, docker-compose and debootstrap; LAB_KEEP=1 keeps the lab up).
package e2e

import (
	"os"
	"testing"

	"github.com/prapush/prapush/lab/labtest"
)

func TestMain(m *testing.M) { os.Exit(labtest.Main(m)) }
