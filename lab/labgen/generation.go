// Package labgen writes fake BlueMind backup stores (/var/backups/bluemind)
// for the prapush lab: generation-<id>.json files in DataProtect's exact
// format and the dp_spool/rsync part trees the restore script reads.
package labgen

import (
	"encoding/json"
	"fmt"
)

// Generation is the content of one generation-<id>.json file. Its fields are
// declared in the order of BlueMind's DataProtectGeneration class, because
// Jackson serialises them in that order and the file must match byte for byte.
type Generation struct {
	ID             int              `json:"id"`
	ProtectionTime int64            `json:"protectionTime"` // epoch milliseconds
	BlueMind       VersionInfo      `json:"blueMind"`
	WithWarnings   bool             `json:"withWarnings"`
	WithErrors     bool             `json:"withErrors"`
	Parts          []PartGeneration `json:"parts"`
}

// VersionInfo is BlueMind's VersionInfo object, in its field order.
type VersionInfo struct {
	Major       string `json:"major"`
	Minor       string `json:"minor"`
	Release     string `json:"release"`
	DisplayName string `json:"displayName"`
}

// PartGeneration is one part of a generation, in the field order of
// BlueMind's PartGeneration class. End is nil while the part runs (an
// interrupted backup leaves it so), which Jackson writes as null.
type PartGeneration struct {
	ID           int    `json:"id"`
	GenerationID int    `json:"generationId"`
	Begin        int64  `json:"begin"`
	End          *int64 `json:"end"`
	Size         int64  `json:"size"` // MB
	Tag          string `json:"tag"`
	Server       string `json:"server"`
	WithWarnings bool   `json:"withWarnings"`
	WithErrors   bool   `json:"withErrors"`
	Valid        string `json:"valid"` // VALID, INVALID or UNKNOWN
	Datatype     string `json:"datatype"`
}

// Marshal returns the file content exactly as BlueMind writes it: compact,
// one line, no trailing newline.
func (g *Generation) Marshal() ([]byte, error) {
	if g.Parts == nil {
		// Jackson writes an empty list, never null, for a new generation.
		g.Parts = []PartGeneration{}
	}
	b, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("marshal generation %d: %w", g.ID, err)
	}
	return b, nil
}

// FileName is the name of the generation's file in the backup store.
func (g *Generation) FileName() string { return fmt.Sprintf("generation-%d.json", g.ID) }

// Datatype returns the DataProtect worker datatype that backs up tag, and
// false for tags no worker backs up (they produce no part).
func Datatype(tag string) (string, bool) {
	d, ok := datatypes[tag]
	return d, ok
}

var datatypes = map[string]string{
	"bm/conf":          "configuration",
	"bm/core":          "directory",
	"bm/pgsql":         "pg",
	"bm/pgsql-data":    "pg",
	"bm/es":            "es",
	"mail/imap":        "cyrus",
	"mail/archive":     "snappy",
	"filehosting/data": "filehosting",
}
