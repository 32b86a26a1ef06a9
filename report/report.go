// Package report is presentation only: the report files of a run
// (report.json, junit.xml, report.md, report.html, logs/) and the terminal views. It
// never talks to nodes.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Schema is the value of Report.Schema. Fields may be added under the same
// schema; the meaning of an existing field never changes.
const Schema = "prapush.report/v1"

// Verdicts of a run.
const (
	VerdictPass = "pass"
	VerdictFail = "fail"
)

// Report is report.json, the source every other rendering is made from.
type Report struct {
	Schema             string      `json:"schema"`
	RunID              string      `json:"run_id"`
	Command            string      `json:"command"`
	StartedAt          time.Time   `json:"started_at"`
	FinishedAt         time.Time   `json:"finished_at"`
	Verdict            string      `json:"verdict"`
	ExitCode           int         `json:"exit_code"`
	Inventory          Inventory   `json:"inventory"`
	Generation         *Generation `json:"generation"`
	RTO                *RTO        `json:"rto"`
	Nodes              []Node      `json:"nodes"`
	ArchitectureChecks []Check     `json:"architecture_checks"`
	PostOperations     []PostOp    `json:"post_operations"`
	// AvailableGenerations are the generations common to every node, oldest first.
	AvailableGenerations []AvailableGeneration `json:"available_generations,omitempty"`
	// Notes are free-text remarks for the reader (e.g. what did not run and why).
	Notes []string `json:"notes,omitempty"`
}

// Inventory identifies the inventory file a run used.
type Inventory struct {
	Path         string `json:"path"`
	SHA256       string `json:"sha256"`
	Architecture string `json:"architecture"`
}

// Generation is the generation a run chose.
type Generation struct {
	ID             int       `json:"id"`
	ProtectionTime time.Time `json:"protection_time"`
	DisplayName    string    `json:"display_name"`
	Status         string    `json:"status"`
}

// RTO compares the recovery time objective with what was achieved.
type RTO struct {
	TargetS   int64  `json:"target_s"`
	AchievedS *int64 `json:"achieved_s"`
}

// Node is one node's part of a report.
type Node struct {
	Name      string   `json:"name"`
	Address   string   `json:"address"`
	IP        string   `json:"ip"`
	Reachable bool     `json:"reachable"`
	Stage     int      `json:"stage"`
	Checks    []Check  `json:"checks"`
	Plan      *Plan    `json:"plan"`
	Restore   *Restore `json:"restore"`
}

// Check is one check result.
type Check struct {
	ID         string `json:"id"`
	Node       string `json:"node,omitempty"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	DurationMS int64  `json:"duration_ms"`
}

// Plan is what restore intends to do on a node.
type Plan struct {
	MenuIndex int      `json:"menu_index"`
	MenuLine  string   `json:"menu_line"`
	Tags      []string `json:"tags"`
	PartIDs   []int    `json:"part_ids"`
	Stage     int      `json:"stage"`
}

// Restore is the outcome of a node's restore.
type Restore struct {
	Status       string    `json:"status"`
	ExitCode     *int      `json:"exit_code"`
	Steps        []Step    `json:"steps"`
	TagsRestored []string  `json:"tags_restored"`
	Log          string    `json:"log"`
	RemoteLog    string    `json:"remote_log"`
	StartedAt    time.Time `json:"started_at"`
	EndedAt      time.Time `json:"ended_at"`
}

// Step is one step of the restore script on a node.
type Step struct {
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
}

// PostOp is one post-operation result.
type PostOp struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Files written into a report directory.
const (
	FileJSON  = "report.json"
	FileJUnit = "junit.xml"
	FileMD    = "report.md"
	DirLogs   = "logs"
)

// WriteDir writes every report file into dir (created 0700 with its
// parents) and returns the first error. Each file is written to a temporary
// name and renamed, so a reader never sees half a report.
func WriteDir(dir string, r *Report) error {
	if err := os.MkdirAll(filepath.Join(dir, DirLogs), 0o700); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	writers := []struct {
		name  string
		write func(io.Writer, *Report) error
	}{
		{FileJSON, WriteJSON},
		{FileJUnit, WriteJUnit},
		{FileMD, WriteMarkdown},
		{FileHTML, WriteHTML},
	}
	for _, w := range writers {
		if err := writeAtomic(filepath.Join(dir, w.name), func(f io.Writer) error { return w.write(f, r) }); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	// Buffered: the renderers write piece by piece (a system call each,
	// a quarter of a 100-node verify's CPU before this buffer).
	bw := bufio.NewWriterSize(f, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report.json file.
func ReadJSON(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read report %s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("read report %s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}

// AvailableGeneration is a generation every node sees with identical
// content (written by `generations` and `verify`).
type AvailableGeneration struct {
	ID             int       `json:"id"`
	ProtectionTime time.Time `json:"protection_time"`
	DisplayName    string    `json:"display_name"`
	Status         string    `json:"status"`
	Parts          int       `json:"parts"`
	SizeMB         int64     `json:"size_mb"`
	Restorable     bool      `json:"restorable"`
	Reason         string    `json:"reason,omitempty"`
}
