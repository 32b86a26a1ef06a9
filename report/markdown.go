package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes r as a Markdown document for tickets and wikis.
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# prapush %s — %s: %s\n\n", md(r.Command), md(r.Inventory.Architecture), strings.ToUpper(r.Verdict))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| run | `%s` |\n", md(r.RunID))
	fmt.Fprintf(&b, "| started | %s |\n", r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "| finished | %s |\n", r.FinishedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "| exit code | %d |\n", r.ExitCode)
	fmt.Fprintf(&b, "| inventory | `%s` (sha256 %s) |\n", md(r.Inventory.Path), md(short(r.Inventory.SHA256)))
	if g := r.Generation; g != nil {
		fmt.Fprintf(&b, "| generation | %d — %s — %s — %s |\n", g.ID, g.ProtectionTime.UTC().Format("2006-01-02 15:04:05 UTC"), md(g.DisplayName), md(g.Status))
	}
	b.WriteString("\n")
	if len(r.ArchitectureChecks) > 0 {
		b.WriteString("## Architecture\n\n| check | status | message |\n|---|---|---|\n")
		for _, c := range r.ArchitectureChecks {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", md(c.ID), statusMark(c.Status), md(c.Message))
		}
		b.WriteString("\n")
	}
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "## Node %s (%s, stage %d)\n\n", md(n.Name), md(n.IP), n.Stage)
		if !n.Reachable {
			b.WriteString("Unreachable.\n\n")
		}
		if len(n.Checks) > 0 {
			b.WriteString("| check | status | message |\n|---|---|---|\n")
			for _, c := range n.Checks {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", md(c.ID), statusMark(c.Status), md(c.Message))
			}
			b.WriteString("\n")
		}
		if p := n.Plan; p != nil {
			fmt.Fprintf(&b, "Plan: menu index %d, line `%s`, tags %s, parts %v.\n\n", p.MenuIndex, md(p.MenuLine), md(strings.Join(p.Tags, ", ")), p.PartIDs)
		}
		if rs := n.Restore; rs != nil {
			fmt.Fprintf(&b, "Restore: **%s**", md(rs.Status))
			if rs.ExitCode != nil {
				fmt.Fprintf(&b, " (exit %d)", *rs.ExitCode)
			}
			fmt.Fprintf(&b, ", log `%s`.\n\n", md(rs.Log))
		}
	}
	if len(r.PostOperations) > 0 {
		b.WriteString("## Post-operations\n\n| operation | status | message |\n|---|---|---|\n")
		for _, p := range r.PostOperations {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", md(p.ID), statusMark(p.Status), md(p.Message))
		}
		b.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", md(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func statusMark(s string) string {
	switch s {
	case "pass":
		return "pass"
	case "warn":
		return "**warn**"
	case "fail":
		return "**FAIL**"
	}
	return md(s)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// md escapes a string that came from a node or the inventory for a
// Markdown table cell: no control character, no markup, no raw HTML.
func md(s string) string {
	var b strings.Builder
	for _, r := range SanitizeText(s) {
		switch r {
		case '|', '\\', '`', '*', '_', '[', ']', '<', '>', '#', '&':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(" ")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
