package report

import (
	"encoding/xml"
	"fmt"
	"io"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes r as JUnit XML: one testsuite per node (plus one for the
// architecture checks and one for post-operations when there are any), one
// testcase per check and one for the node's restore. A warning is a passing
// testcase whose system-out carries the message, unless the run is strict
// (then the check itself is already a failure in r).
func WriteJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Name: SanitizeText("prapush " + r.Command + " " + r.Inventory.Architecture)}
	add := func(s *junitSuite, c junitCase) {
		s.Tests++
		switch {
		case c.Failure != nil:
			s.Failures++
		case c.Skipped != nil:
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
	}
	checkCase := func(class string, c Check) junitCase {
		jc := junitCase{Name: SanitizeText(c.ID), Classname: SanitizeText(class), Time: seconds(c.DurationMS)}
		switch c.Status {
		case "fail":
			jc.Failure = &junitMessage{Message: SanitizeText(c.Message), Type: "check", Body: SanitizeText(c.Message)}
		case "skip":
			jc.Skipped = &junitMessage{Message: SanitizeText(c.Message)}
		case "warn":
			jc.SystemOut = "warning: " + SanitizeText(c.Message)
		}
		return jc
	}
	if len(r.ArchitectureChecks) > 0 {
		s := junitSuite{Name: "architecture"}
		for _, c := range r.ArchitectureChecks {
			add(&s, checkCase("architecture", c))
		}
		out.Suites = append(out.Suites, s)
	}
	for _, n := range r.Nodes {
		s := junitSuite{Name: SanitizeText(n.Name)}
		var ms int64
		for _, c := range n.Checks {
			ms += c.DurationMS
			add(&s, checkCase(n.Name, c))
		}
		if n.Restore != nil {
			jc := junitCase{Name: "restore", Classname: SanitizeText(n.Name)}
			if !n.Restore.StartedAt.IsZero() && !n.Restore.EndedAt.IsZero() {
				d := n.Restore.EndedAt.Sub(n.Restore.StartedAt).Milliseconds()
				ms += d
				jc.Time = seconds(d)
			}
			if n.Restore.Status != "success" {
				msg := "restore " + n.Restore.Status
				if last := lastStep(n.Restore.Steps); last != "" {
					msg += " at step " + SanitizeText(last)
				}
				jc.Failure = &junitMessage{Message: msg, Type: "restore", Body: msg}
			}
			add(&s, jc)
		}
		s.Time = seconds(ms)
		out.Suites = append(out.Suites, s)
	}
	if len(r.PostOperations) > 0 {
		s := junitSuite{Name: "post-operations"}
		for _, p := range r.PostOperations {
			jc := junitCase{Name: SanitizeText(p.ID), Classname: "post-operations"}
			switch p.Status {
			case "fail":
				jc.Failure = &junitMessage{Message: SanitizeText(p.Message), Type: "post-operation", Body: SanitizeText(p.Message)}
			case "skip":
				jc.Skipped = &junitMessage{Message: SanitizeText(p.Message)}
			}
			add(&s, jc)
		}
		out.Suites = append(out.Suites, s)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("encode junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func lastStep(steps []Step) string {
	if len(steps) == 0 {
		return ""
	}
	return steps[len(steps)-1].Name
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }
