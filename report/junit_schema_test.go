package report

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prapush/prapush/internal/testenv"
)

// xmllint validates file against testdata/junit.xsd and returns its verdict.
func xmllint(t *testing.T, xml []byte) error {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		testenv.SkipOrFail(t, "xmllint not installed (Debian package libxml2-utils)")
	}
	schema, err := filepath.Abs(filepath.Join("testdata", "junit.xsd"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(file, xml, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", schema, file).CombinedOutput()
	if err != nil {
		return &schemaError{string(out)}
	}
	return nil
}

type schemaError struct{ out string }

func (e *schemaError) Error() string { return e.out }

func junitOf(t *testing.T, r *Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriteJUnit_IsValidAgainstTheJUnitSchema(t *testing.T) {
	unreachable := restoreSample()
	unreachable.Command, unreachable.Verdict, unreachable.ExitCode = "verify", VerdictFail, 3
	for i := range unreachable.Nodes {
		unreachable.Nodes[i].Plan, unreachable.Nodes[i].Restore = nil, nil
	}
	unreachable.Nodes[1].Reachable = false
	unreachable.Nodes[1].Checks = []Check{
		{ID: "ssh.connect", Status: "fail", Message: "dial tcp 172.29.77.12:22: connect: no route to host"},
		{ID: "backup.present", Status: "skip", Message: "node unreachable"},
	}
	unreachable.PostOperations = nil

	stopped := restoreSample()
	stopped.Verdict, stopped.ExitCode = VerdictFail, 1
	core := stopped.Nodes[0].Restore
	core.Status = "partial"
	core.Steps[len(core.Steps)-2].Status = "stopped"
	core.Steps = core.Steps[:len(core.Steps)-1]
	notStarted := stopped.Nodes[2].Restore
	notStarted.Status, notStarted.Steps, notStarted.ExitCode = "not-started", nil, nil

	hostileRun := sample()
	for name, r := range map[string]*Report{
		"a three-node restore":                      restoreSample(),
		"a verify with an unreachable node":         unreachable,
		"a restore stopped mid-way":                 stopped,
		"a node sending control characters and XML": hostileRun,
	} {
		t.Run(name, func(t *testing.T) {
			xml := junitOf(t, r)
			if err := xmllint(t, xml); err != nil {
				t.Errorf("junit.xml rejected by testdata/junit.xsd:\n%v\n%s", err, xml)
			}
		})
	}
}

// The schema is a real check: it rejects what CI parsers trip on.
func TestJUnitSchema_RejectsMalformedReports(t *testing.T) {
	for name, xml := range map[string]string{
		"testcase without a name": `<testsuites><testsuite name="a" tests="1"><testcase classname="a"/></testsuite></testsuites>`,
		"empty time":              `<testsuites><testsuite name="a" tests="1" time=""><testcase name="x"/></testsuite></testsuites>`,
		"negative count":          `<testsuites><testsuite name="a" tests="-1"></testsuite></testsuites>`,
		"two outcomes":            `<testsuites><testsuite name="a" tests="1"><testcase name="x"><failure/><skipped/></testcase></testsuite></testsuites>`,
		"unknown element":         `<testsuites><testsuite name="a" tests="1"><testcase name="x"><warning/></testcase></testsuite></testsuites>`,
	} {
		t.Run(name, func(t *testing.T) {
			err := xmllint(t, []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+xml))
			if err == nil {
				t.Fatal("the schema accepted it")
			}
			if !strings.Contains(err.Error(), "fails to validate") {
				t.Errorf("xmllint failed for another reason: %v", err)
			}
		})
	}
}
