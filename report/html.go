package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"
)

// FileHTML is the self-contained HTML rendering of a report.
const FileHTML = "report.html"

// ManualChecklist is what the vendor's procedure asks after a restore that
// prapush cannot do for the operator.
var ManualChecklist = []string{
	"Reinstall the subscription, if you have one (admin console: System management > Subscription).",
	"Reinstall the plugins the architecture used (e.g. LDAP/AD import: bm-plugin-core-ldap-import, bm-plugin-admin-console-ldap-import), then restart BlueMind.",
	"Log in to the admin console as admin0@global.virt and check that users can log in and mail flows.",
}

// timelineRow is one node's steps placed on the run's time axis.
type timelineRow struct {
	Node  string
	Y     int
	Bars  []timelineBar
	Label string
}

type timelineBar struct {
	X, W  float64
	Y     int
	Class string
	Title string
}

type htmlData struct {
	R         *Report
	Timeline  []timelineRow
	Width     int
	Height    int
	Axis      []axisTick
	Checklist []string
	Checks    []string // union of check ids, table rows
	Findings  []Check  // every node check that did not pass, with its node
	Generated string
	Duration  string
	RTOText   string
}

type axisTick struct {
	X     float64
	Label string
}

// WriteHTML writes r as one self-contained HTML page: no script, no
// external style, font or image, so it can be archived as DR-drill
// evidence and opened anywhere. html/template escapes every string.
func WriteHTML(w io.Writer, r *Report) error {
	d := htmlData{R: r, Width: 900, Checklist: ManualChecklist, Generated: r.FinishedAt.UTC().Format("2006-01-02 15:04:05 UTC")}
	d.Duration = r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
	if r.RTO != nil {
		d.RTOText = fmt.Sprintf("target %s", time.Duration(r.RTO.TargetS)*time.Second)
		if r.RTO.AchievedS != nil {
			d.RTOText += fmt.Sprintf(", achieved %s", time.Duration(*r.RTO.AchievedS)*time.Second)
		}
	}
	seen := map[string]bool{}
	for _, n := range r.Nodes {
		for _, c := range n.Checks {
			if !seen[c.ID] {
				seen[c.ID] = true
				d.Checks = append(d.Checks, c.ID)
			}
		}
	}
	for _, n := range r.Nodes {
		for _, c := range n.Checks {
			if c.Status != "pass" {
				c.Node = n.Name
				d.Findings = append(d.Findings, c)
			}
		}
	}
	d.Timeline, d.Axis, d.Height = timeline(r, d.Width)
	return htmlTemplate.Execute(w, d)
}

// timeline lays every node's restore steps on one time axis.
func timeline(r *Report, width int) ([]timelineRow, []axisTick, int) {
	var t0, t1 time.Time
	for _, n := range r.Nodes {
		if n.Restore == nil {
			continue
		}
		for _, s := range n.Restore.Steps {
			if !s.StartedAt.IsZero() && (t0.IsZero() || s.StartedAt.Before(t0)) {
				t0 = s.StartedAt
			}
			if s.EndedAt.After(t1) {
				t1 = s.EndedAt
			}
		}
	}
	if t0.IsZero() || !t1.After(t0) {
		return nil, nil, 0
	}
	const left, rowH = 120.0, 26
	span := t1.Sub(t0).Seconds()
	scale := (float64(width) - left - 10) / span
	var rows []timelineRow
	for _, n := range r.Nodes {
		if n.Restore == nil || len(n.Restore.Steps) == 0 {
			continue
		}
		y := 20 + len(rows)*rowH
		row := timelineRow{Node: n.Name, Y: y, Label: n.Restore.Status}
		for _, s := range n.Restore.Steps {
			end := s.EndedAt
			if end.IsZero() {
				end = t1
			}
			x := left + s.StartedAt.Sub(t0).Seconds()*scale
			w := max(end.Sub(s.StartedAt).Seconds()*scale, 1.5)
			class := "ok"
			switch s.Status {
			case "fail":
				class = "fail"
			case "running", "partial", "timeout":
				class = "warn"
			}
			row.Bars = append(row.Bars, timelineBar{X: x, W: w, Y: y, Class: class,
				Title: fmt.Sprintf("%s — %s (%s)", s.Name, s.Status, end.Sub(s.StartedAt).Round(time.Millisecond))})
		}
		rows = append(rows, row)
	}
	var ticks []axisTick
	step := niceStep(span)
	for s := 0.0; s <= span+1e-9; s += step {
		ticks = append(ticks, axisTick{X: left + s*scale, Label: (time.Duration(s * float64(time.Second))).Round(time.Second).String()})
	}
	sort.SliceStable(ticks, func(i, j int) bool { return ticks[i].X < ticks[j].X })
	return rows, ticks, 20 + len(rows)*rowH + 20
}

// niceStep returns an axis step giving about 6 ticks.
func niceStep(span float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		if span/s <= 6 {
			return s
		}
	}
	return span / 6
}

func checkStatus(n Node, id string) string {
	for _, c := range n.Checks {
		if c.ID == id {
			return c.Status
		}
	}
	return ""
}

func checkMessage(n Node, id string) string {
	for _, c := range n.Checks {
		if c.ID == id {
			return c.Message
		}
	}
	return ""
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"status":  checkStatus,
	"message": checkMessage,
	"clean":   SanitizeText,
	"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"dur": func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return ""
		}
		d := b.Sub(a)
		if d < 10*time.Second {
			return d.Round(10 * time.Millisecond).String()
		}
		return d.Round(time.Second).String()
	},
	"deref": func(p *int) int { return *p },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>prapush {{.R.Command}} — {{clean .R.Inventory.Architecture}} — {{.R.Verdict}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:12px;color:#1d2129}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .4em;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:bold}
.v-pass{background:#1e7b34}.v-fail{background:#b42318}
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f5f7}.scroll{overflow-x:auto}
td.pass{background:#e6f4ea}td.warn{background:#fff4ce}td.fail{background:#fde2e1;font-weight:bold}td.skip{color:#777}
.msg{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word}
svg .ok{fill:#2e9b4f}svg .fail{fill:#d92d20}svg .warn{fill:#e9a700}svg text{font:11px sans-serif}svg line{stroke:#ccc}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{font-weight:bold}
@media print{body{max-width:none}a{color:inherit;text-decoration:none}.scroll{overflow:visible}}
@media (max-width:600px){body{font-size:13px;padding:6px}}
</style>
</head>
<body>
<h1>prapush {{.R.Command}} — {{clean .R.Inventory.Architecture}} <span class="verdict v-{{.R.Verdict}}" id="verdict">{{.R.Verdict}}</span></h1>
<dl>
<dt>Run</dt><dd>{{clean .R.RunID}}</dd>
<dt>Started</dt><dd>{{utc .R.StartedAt}} ({{.Duration}})</dd>
<dt>Exit code</dt><dd>{{.R.ExitCode}}</dd>
<dt>Inventory</dt><dd>{{clean .R.Inventory.Path}} <small>sha256 {{.R.Inventory.SHA256}}</small></dd>
{{with .R.Generation}}<dt>Generation</dt><dd>{{.ID}} — {{utc .ProtectionTime}} — BlueMind {{clean .DisplayName}} — {{clean .Status}}</dd>{{end}}
{{if .RTOText}}<dt>RTO</dt><dd>{{.RTOText}}</dd>{{end}}
</dl>

<h2>Nodes</h2>
<div class="scroll"><table id="nodes">
<tr><th>node</th>{{range .R.Nodes}}<th>{{clean .Name}}</th>{{end}}</tr>
<tr><th>ip</th>{{range .R.Nodes}}<td>{{clean .IP}}</td>{{end}}</tr>
<tr><th>stage</th>{{range .R.Nodes}}<td>{{.Stage}}</td>{{end}}</tr>
<tr><th>reachable</th>{{range .R.Nodes}}<td>{{if .Reachable}}yes{{else}}<b>no</b>{{end}}</td>{{end}}</tr>
<tr><th>restore</th>{{range .R.Nodes}}<td>{{with .Restore}}{{clean .Status}}{{else}}-{{end}}</td>{{end}}</tr>
{{range $id := .Checks}}<tr><th>{{clean $id}}</th>{{range $n := $.R.Nodes}}{{$s := status $n $id}}<td class="{{$s}}" title="{{clean (message $n $id)}}">{{$s}}</td>{{end}}</tr>
{{end}}</table></div>

{{if .R.ArchitectureChecks}}<h2>Architecture checks</h2>
<table><tr><th>check</th><th>status</th><th>message</th></tr>
{{range .R.ArchitectureChecks}}<tr><td>{{clean .ID}}</td><td class="{{.Status}}">{{.Status}}</td><td class="msg">{{clean .Message}}</td></tr>{{end}}
</table>{{end}}

<h2>Findings</h2>
{{if .Findings}}<table><tr><th>node</th><th>check</th><th>status</th><th>message</th></tr>
{{range .Findings}}<tr><td>{{clean .Node}}</td><td>{{clean .ID}}</td><td class="{{.Status}}">{{.Status}}</td><td class="msg">{{clean .Message}}</td></tr>{{end}}
</table>{{else}}<p>No check failed, warned or was skipped.</p>{{end}}

{{if .Timeline}}<h2>Timeline</h2>
<div class="scroll"><svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
{{range .Axis}}<line x1="{{.X}}" y1="10" x2="{{.X}}" y2="{{$.Height}}"/><text x="{{.X}}" y="10">{{.Label}}</text>{{end}}
{{range .Timeline}}<text x="4" y="{{.Y}}" dy="14">{{clean .Node}} ({{clean .Label}})</text>
{{range .Bars}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="18"><title>{{clean .Title}}</title></rect>{{end}}
{{end}}</svg></div>{{end}}

{{range .R.Nodes}}{{if .Restore}}<h2>Restore on {{clean .Name}}: {{clean .Restore.Status}}</h2>
<p>{{if .Restore.ExitCode}}exit {{deref .Restore.ExitCode}}, {{end}}{{dur .Restore.StartedAt .Restore.EndedAt}} — log: <a href="{{.Restore.Log}}">{{clean .Restore.Log}}</a>{{if .Restore.RemoteLog}}; on the node: {{clean .Restore.RemoteLog}}{{end}}</p>
<table><tr><th>step</th><th>status</th><th>started</th><th>duration</th></tr>
{{range .Restore.Steps}}<tr><td>{{clean .Name}}</td><td class="{{if eq .Status "ok"}}pass{{else}}fail{{end}}">{{clean .Status}}</td><td>{{utc .StartedAt}}</td><td>{{dur .StartedAt .EndedAt}}</td></tr>{{end}}
</table>{{end}}{{end}}

{{if .R.PostOperations}}<h2>Post-operations</h2>
<table><tr><th>operation</th><th>status</th><th>message</th></tr>
{{range .R.PostOperations}}<tr><td>{{clean .ID}}</td><td class="{{.Status}}">{{.Status}}</td><td class="msg">{{clean .Message}}</td></tr>{{end}}
</table>{{end}}

{{if eq .R.Command "restore"}}<h2>Manual checklist</h2>
<ul>{{range .Checklist}}<li>{{.}}</li>{{end}}</ul>{{end}}

{{if .R.Notes}}<h2>Notes</h2><ul>{{range .R.Notes}}<li>{{clean .}}</li>{{end}}</ul>{{end}}
<p><small>Generated by prapush at {{.Generated}}.</small></p>
</body>
</html>
`))
