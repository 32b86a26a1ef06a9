package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prapush/prapush/internal/testenv"
)

// restoreSample is a realistic three-node restore: mail and files in stage
// 1 together, core alone in stage 2, with the fake node's step names.
func restoreSample() *Report {
	t0 := time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)
	zero := 0
	steps := func(start time.Time, names ...string) ([]Step, time.Time) {
		var out []Step
		at := start
		for i, n := range names {
			d := time.Duration(20+15*i) * time.Second
			out = append(out, Step{Name: n, Status: "ok", StartedAt: at, EndedAt: at.Add(d)})
			at = at.Add(d)
		}
		return out, at
	}
	checks := func(node string) []Check {
		return []Check{
			{ID: "ssh.connect", Status: "pass", Message: "connected as root", DurationMS: 41},
			{ID: "backup.present", Status: "pass", Message: "/var/backups/bluemind is a directory", DurationMS: 3},
			{ID: "restore.script", Status: "pass", Message: "bm-pra restore script 4.8.2", DurationMS: 5},
			{ID: "disk.free", Status: "pass", Message: "41 GiB free, 12 GiB needed", DurationMS: 2},
			{ID: "os.release", Status: "warn", Message: node + ": Debian 11, others Debian 12", DurationMS: 1},
		}
	}
	mailSteps, mailEnd := steps(t0.Add(4*time.Second), "Stopping BlueMind Node service", "Restoring BlueMind Node configuration",
		"Restoring BlueMind common configuration", "Restoring Cyrus lib files", "Restoring Cyrus spool files", "Fixing Cyrus files rights", "Starting BlueMind services")
	filesSteps, filesEnd := steps(t0.Add(5*time.Second), "Stopping BlueMind Node service", "Restoring BlueMind Node configuration",
		"Restoring BlueMind filehosting directory", "Starting BlueMind services")
	stage2 := mailEnd.Add(3 * time.Second)
	coreSteps, coreEnd := steps(stage2, "Stopping BlueMind services", "Restoring BlueMind HPS configuration", "Restoring PostgreSQL configuration",
		"Restaure DB bj", "Restoring ES index files", "Starting BlueMind services")
	achieved := int64(coreEnd.Add(2*time.Second).Sub(t0) / time.Second)
	node := func(name, ip string, stage int, tags []string, st []Step, start, end time.Time) Node {
		return Node{Name: name, Address: ip, IP: ip, Reachable: true, Stage: stage, Checks: checks(name),
			Plan: &Plan{MenuIndex: 3, MenuLine: "3\t2026-11-27 23:30:02\t4.8.2\tstatus: OK", Tags: tags, PartIDs: []int{7, 8}, Stage: stage},
			Restore: &Restore{Status: "success", ExitCode: &zero, Steps: st, TagsRestored: tags, Log: "logs/" + name + ".log",
				RemoteLog: "/var/log/bm-pra/restore.log", StartedAt: start, EndedAt: end}}
	}
	return &Report{
		Schema: Schema, RunID: "20261128T200000Z-5eed", Command: "restore",
		StartedAt: t0, FinishedAt: coreEnd.Add(2 * time.Second), Verdict: VerdictPass, ExitCode: 0,
		Inventory:  Inventory{Path: "inventory.toml", SHA256: "9f2c4e0a1b7d3c5e9f2c4e0a1b7d3c5e", Architecture: "acme-prod"},
		Generation: &Generation{ID: 312, ProtectionTime: time.Date(2026, 11, 27, 23, 30, 2, 0, time.UTC), DisplayName: "2026-11-27 23:30", Status: "OK"},
		RTO:        &RTO{TargetS: 4 * 3600, AchievedS: &achieved},
		Nodes: []Node{
			node("core", "172.29.77.11", 2, []string{"bm/core", "bm/conf", "bm/pgsql", "bm/es"}, coreSteps, stage2, coreEnd),
			node("mail", "172.29.77.12", 1, []string{"mail/imap", "bm/pgsql-data", "bm/conf"}, mailSteps, t0.Add(4*time.Second), mailEnd),
			node("files", "172.29.77.13", 1, []string{"filehosting/data", "mail/archive", "bm/conf"}, filesSteps, t0.Add(5*time.Second), filesEnd),
		},
		ArchitectureChecks: []Check{
			{ID: "generation.common", Status: "pass", Message: "3 common generations, newest 312", DurationMS: 0},
			{ID: "stages", Status: "pass", Message: "core restores after every other node", DurationMS: 0},
		},
		PostOperations: []PostOp{
			{ID: "resync", Status: "pass", Message: "directory resynchronised"},
			{ID: "reindex", Status: "skip", Message: "--no-post"},
		},
	}
}

// chromium returns the path of a Chromium binary, or skips (fails in CI).
// Debian's /usr/bin/chromium wrapper adds remote extensions and API keys,
// more background traffic: the binary behind it is preferred.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/lib/chromium/chromium"); err == nil {
		return "/usr/lib/chromium/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.SkipOrFail(t, "chromium not installed (Debian package chromium)")
	return ""
}

// countingProxy is an HTTP proxy on loopback that refuses and counts every
// request, so a page that fetches anything outside itself is caught.
// Chromium's own background services (component and extension updater,
// account check, network time), which no command-line flag fully silences
// in headless mode, are refused too but not counted: only their exact
// hosts are exempt, so a page loading e.g. fonts.googleapis.com still counts.
type countingProxy struct {
	addr    string
	n       atomic.Int64
	mu      chan struct{}
	reqs    []string
	ignored []string
}

// browserServices are the hosts Chromium itself contacts whatever the page.
var browserServices = map[string]bool{
	"update.googleapis.com": true, "accounts.google.com": true, "clients2.google.com": true,
}

func startCountingProxy(t *testing.T) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{addr: ln.Addr().String(), mu: make(chan struct{}, 1)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		req := r.Method + " " + r.Host + r.URL.RequestURI()
		p.mu <- struct{}{}
		if browserServices[host] {
			p.ignored = append(p.ignored, req)
		} else {
			p.n.Add(1)
			p.reqs = append(p.reqs, req)
		}
		<-p.mu
		http.Error(w, "prapush test proxy: no external request allowed", http.StatusForbidden)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *countingProxy) requests() []string {
	p.mu <- struct{}{}
	defer func() { <-p.mu }()
	return append([]string(nil), p.reqs...)
}

// runChromium runs headless Chromium with args plus the flags every run
// needs: a throwaway profile, no sandbox (tests run as root), every
// request through proxy, even to loopback, and nothing of Google's
// background traffic.
func runChromium(t *testing.T, bin string, proxy *countingProxy, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	profile := t.TempDir()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--user-data-dir=" + profile, "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--disable-default-apps", "--metrics-recording-only",
		"--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,NetworkTimeServiceQuerying",
		"--proxy-server=http://" + proxy.addr, "--proxy-bypass-list=<-loopback>",
		"--hide-scrollbars", "--force-color-profile=srgb",
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func TestWriteHTML_RendersInChromiumWithoutAnyExternalRequest(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, FileHTML)
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(f, restoreSample()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	proxy := startCountingProxy(t)
	url := "file://" + page

	dom := string(runChromium(t, bin, proxy, "--dump-dom", url))
	for _, want := range []string{`<table id="nodes">`, `<svg id="timeline"`, "Restoring Cyrus spool files", "acme-prod"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	steps := 0
	for _, n := range restoreSample().Nodes {
		steps += len(n.Restore.Steps)
	}
	if svg := between(dom, `<svg id="timeline"`, "</svg>"); strings.Count(svg, "<rect") < steps {
		t.Errorf("the timeline SVG has %d bars, want one per step (%d)", strings.Count(svg, "<rect"), steps)
	}
	if n := countNodeColumns(between(dom, `<table id="nodes">`, "</table>")); n != 3 {
		t.Errorf("node table has %d node columns, want one per node (3)", n)
	}

	shot := filepath.Join(dir, "report.png")
	runChromium(t, bin, proxy, "--screenshot="+shot, "--window-size=1100,1400", url)
	img := decodePNG(t, shot)
	if b := img.Bounds(); b.Dx() != 1100 || b.Dy() != 1400 {
		t.Errorf("screenshot is %v, want 1100x1400", b.Size())
	}
	if n := colours(img, 64); n < 8 {
		t.Errorf("screenshot has %d colours: a blank or broken page", n)
	}

	// The control: the same proxy sees a page that does load something, so
	// zero requests above means none were made, not that none were seen.
	leaky := filepath.Join(dir, "leaky.html")
	if err := os.WriteFile(leaky, []byte(`<!doctype html><img src="http://example.invalid/pixel.png">`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := proxy.n.Load()
	runChromium(t, bin, proxy, "--dump-dom", "--virtual-time-budget=2000", "file://"+leaky)
	if proxy.n.Load() == before {
		t.Fatal("the proxy saw nothing from a page with an external image: it cannot prove anything")
	}
	if before != 0 {
		t.Errorf("report.html made %d external request(s): %q", before, proxy.requests())
	}
	// And statically: nothing in the page points outside it.
	for _, attr := range []string{`src="http`, `href="http`, `src="//`, `href="//`, `url(http`, `url(//`, `@import`, "<script", "<link"} {
		if strings.Contains(dom, attr) {
			t.Errorf("report.html references something outside itself: %s", attr)
		}
	}
}

// between returns the part of s from the first start to the next end.
func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return s
}

// countRows counts the <tr> with a node name in them.
// countNodeColumns counts the node headers of the nodes table's first row
// (nodes are columns, checks are rows: a page stays narrow with many checks).
func countNodeColumns(table string) int {
	first := between(table, "<tr>", "</tr>")
	n := 0
	for _, name := range []string{"core", "mail", "files"} {
		if strings.Contains(first, "<th>"+name+"</th>") {
			n++
		}
	}
	return n
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	return img
}

// colours counts the distinct colours of img, stopping at limit.
func colours(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
