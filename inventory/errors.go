package inventory

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with an inventory, located in its file.
type Problem struct {
	File string
	Line int    // 1-based line of the key (or of its table when the key is missing)
	Col  int    // 1-based column, set for TOML syntax errors only
	Key  string // canonical key, e.g. "architecture.name" or "nodes[2].ip"; "" for a syntax error
	Msg  string
}

// Error returns "<file>:<line>: <key>: <msg>"; a syntax error, which has a
// column and may have no key, reads "<file>:<line>:<col>: <msg>".
func (p Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:", p.File, p.Line)
	if p.Col > 0 {
		fmt.Fprintf(&b, "%d:", p.Col)
	}
	if p.Key != "" {
		fmt.Fprintf(&b, " %s:", p.Key)
	}
	fmt.Fprintf(&b, " %s", p.Msg)
	return b.String()
}

// Error is returned by Load and Parse when the inventory is invalid. It holds
// every problem found, ordered by line, so that one run shows them all.
type Error struct {
	Problems []Problem
}

// Error returns the problems, one per line.
func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}
