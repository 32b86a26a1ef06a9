package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"prapush": func() { os.Exit(Main()) },
	})
}

// TestCLI runs the testscript files in testdata/: flags, messages, exit
// codes and the files each command writes.
func TestCLI(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			// Hermetic: no ssh-agent, no user ssh config, no colour.
			e.Setenv("SSH_AUTH_SOCK", "")
			e.Setenv("NO_COLOR", "1")
			return nil
		},
	})
}
