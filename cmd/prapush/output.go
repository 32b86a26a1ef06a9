package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fatih/color"

	"github.com/prapush/prapush/report"
	"github.com/prapush/prapush/tasks"
)

// useColor is the one colour decision: --color, NO_COLOR, TERM=dumb and
// whether stdout is a terminal.
func (a *app) useColor() bool {
	switch a.g.color {
	case "always":
		return true
	case "never":
		return false
	}
	if a.env.Getenv("NO_COLOR") != "" || a.env.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(a.env.Stdout)
}

// painter colours status words, or not.
type painter struct{ on bool }

func (p painter) paint(s string, attrs ...color.Attribute) string {
	if !p.on {
		return s
	}
	c := color.New(attrs...)
	c.EnableColor()
	return c.Sprint(s)
}

func (p painter) status(s string) string {
	switch s {
	case "pass":
		return p.paint("pass", color.FgGreen)
	case "warn":
		return p.paint("WARN", color.FgYellow, color.Bold)
	case "fail":
		return p.paint("FAIL", color.FgRed, color.Bold)
	case "skip":
		return p.paint("skip", color.Faint)
	}
	return s
}

// newRunID returns a sortable, unique run id: UTC time plus 4 random bytes.
func newRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// reportDir returns the directory of this run's report.
func (a *app) reportDir(runID string) string {
	if a.g.reportDir != "" {
		return a.g.reportDir
	}
	return filepath.Join("prapush-reports", runID)
}

// writeReport writes the report files and prints their path last.
func (a *app) writeReport(dir string, r *report.Report) error {
	if err := report.WriteDir(dir, r); err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stderr, "report: %s\n", filepath.Join(dir, report.FileJSON))
	return nil
}

// printChecks prints one node-prefixed line per check result (plain
// output, safe for logs and CI).
func printChecks(w io.Writer, p painter, nodeWidth int, node string, checks []report.Check, verbose bool) {
	for _, c := range checks {
		if c.Status == "pass" && !verbose {
			continue
		}
		fmt.Fprintf(w, "%-*s  %s  %-22s %s\n", nodeWidth, node, p.status(c.Status), c.ID, report.SanitizeText(c.Message))
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var (
	colorGreen = []color.Attribute{color.FgGreen, color.Bold}
	colorRed   = []color.Attribute{color.FgRed, color.Bold}
)

// lineObserver prints one plain, node-prefixed line per progress event;
// each line is written whole, so nodes never interleave mid-line.
type lineObserver struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *lineObserver) NodeEvent(node, phase, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s: %s %s\n", report.SanitizeText(node), phase, report.SanitizeText(msg))
}

func (o *lineObserver) Check(r tasks.CheckResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	node := r.Node
	if node == "" {
		node = "architecture"
	}
	fmt.Fprintf(o.w, "%s: %s %s\n", report.SanitizeText(node), r.ID, r.Status)
}
