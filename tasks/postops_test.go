package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// splitQuoted splits a command line made by transport.Quote back into its
// words (bare words, '...' and the '\” escape).
func postSplitWords(t testing.TB, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func TestSplitQuoted_InvertsQuote(t *testing.T) {
	in := []string{"sh", "-c", "it's a \"script\"\n$x", "", "a b", `\`}
	got := postSplitWords(t, transport.Quote(in...))
	if fmt.Sprint(got) != fmt.Sprint(in) || len(got) != len(in) {
		t.Fatalf("split(Quote(%q)) = %q", in, got)
	}
}

// fakePostTask is one task of fakeCoreAPI.
type fakePostTask struct {
	polls, pollsNeeded int
	final              string // "Success" or "InError"; "" = never ends
	entry              string
	logs               []string
}

// fakeCoreAPI emulates the core's local API in memory (domain §4.6).
type fakeCoreAPI struct {
	mu         sync.Mutex
	stateSeq   []apiAnswer // answers of GET state, the last one repeated
	stateCalls int
	ops        map[string]*opBehaviour // by path
	tasks      map[string]*fakePostTask
	generation string // body of GET /api/dataprotect/generations
	posts      []string
}

type apiAnswer struct {
	code int
	body string
}

type opBehaviour struct {
	http        *apiAnswer // answered instead of a task
	void        bool       // 200 without body (updateCertificate)
	pollsNeeded int
	final       string
	entry       string
	logs        []string
}

func newFakeCoreAPI() *fakeCoreAPI {
	return &fakeCoreAPI{
		stateSeq: []apiAnswer{{200, `"CORE_STATE_RUNNING"`}},
		ops: map[string]*opBehaviour{
			"/api/dataprotect/_syncfs":                  {pollsNeeded: 1, final: "Success"},
			"/api/system/security/_updatefirewallrules": {pollsNeeded: 1, final: "Success"},
			"/api/system/maildelivery/mgmt/_repair":     {pollsNeeded: 1, final: "Success"},
			"/api/system/security":                      {void: true},
		},
		tasks:      map[string]*fakePostTask{},
		generation: `[{"id":310},{"id":311},{"id":312}]`,
	}
}

func (a *fakeCoreAPI) serve(method, path string) apiAnswer {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case method == "GET" && path == "/api/system/installation/state":
		r := a.stateSeq[min(a.stateCalls, len(a.stateSeq)-1)]
		a.stateCalls++
		return r
	case method == "GET" && path == "/api/dataprotect/generations":
		return apiAnswer{200, a.generation}
	case method == "GET" && strings.HasPrefix(path, "/api/tasks/"):
		rest := strings.TrimPrefix(path, "/api/tasks/")
		id, logs := strings.CutSuffix(rest, "/_currentLogs")
		tk := a.tasks[id]
		if tk == nil {
			return apiAnswer{404, `{"errorCode":"NOT_FOUND","message":"task ` + id + `"}`}
		}
		if logs {
			b, _ := json.Marshal(tk.logs)
			return apiAnswer{200, string(b)}
		}
		tk.polls++
		state, entry := "InProgress", "running"
		if tk.final != "" && tk.polls > tk.pollsNeeded {
			state, entry = tk.final, tk.entry
		}
		b, _ := json.Marshal(map[string]any{"state": state, "progress": 0.5, "lastLogEntry": entry, "result": nil})
		return apiAnswer{200, string(b)}
	case method == "POST":
		a.posts = append(a.posts, path)
		op := a.ops[path]
		switch {
		case op == nil:
			return apiAnswer{404, `{"errorCode":"NOT_FOUND","message":"` + path + `"}`}
		case op.http != nil:
			return *op.http
		case op.void:
			return apiAnswer{200, ""}
		}
		id := fmt.Sprintf("task-%d", len(a.tasks)+1)
		a.tasks[id] = &fakePostTask{pollsNeeded: op.pollsNeeded, final: op.final, entry: op.entry, logs: op.logs}
		return apiAnswer{200, `{"id":"` + id + `"}`}
	}
	return apiAnswer{404, `{"errorCode":"NOT_FOUND","message":"` + path + `"}`}
}

// fakeCore is an in-memory transport.Conn of a core node: it answers the
// API script through fakeCoreAPI, the check script with canned facts, and
// records every command line.
type fakeCore struct {
	t        testing.TB
	api      *fakeCoreAPI
	mu       sync.Mutex
	commands []string
	stdins   int // commands given a stdin
	now      int64
	facts    string // output of the check script
	genFile  string // output of cat generation-N.json
	failRun  func(cmd string) error
}

func newFakeCore(t testing.TB) *fakeCore {
	return &fakeCore{t: t, api: newFakeCoreAPI(), now: 1_700_000_000, facts: goodPostFacts(1_700_000_000)}
}

// goodFacts is the check script's output on a healthy core whose files
// were rewritten at epoch now.
func goodPostFacts(now int64) string {
	n := strconv.FormatInt(now, 10)
	var b strings.Builder
	b.WriteString("now=" + n + "\nbmctl_rc=0\nbmnode=active\nini=aaa\ninibak=aaa /var/backups/bluemind/dp_spool/rsync/10.0.0.1/bm/conf/2041/var/backups/bluemind/work/conf/etc/bm/bm.ini\n")
	b.WriteString("tok=440 root:www-data\ncert_crt=2\ncert_key=1\ncert_end=Mar 14 00:00:00 2035 GMT\ncert_expired=0\ncert_names=2\n")
	b.WriteString("fw_mtime=" + n + "\nfw_hosts=10.0.0.1 10.0.0.2\n")
	for _, m := range []string{"transport", "virtual_alias", "virtual_domains", "virtual_mailbox", "master_relay_transport"} {
		b.WriteString("pf=" + m + " " + n + "\n")
	}
	b.WriteString("genfile=generation-310.json\ngenfile=generation-311.json\ngenfile=generation-312.json\nend=1\n")
	return b.String()
}

func (c *fakeCore) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.mu.Lock()
	c.commands = append(c.commands, cmd)
	if stdin != nil {
		c.stdins++
	}
	fail := c.failRun
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if fail != nil {
		if err := fail(cmd); err != nil {
			return err
		}
	}
	if cmd == "date +%s" {
		fmt.Fprintln(stdout, c.now)
		return nil
	}
	w := postSplitWords(c.t, cmd)
	switch {
	case len(w) == 8 && w[0] == "sh" && w[3] == "prapush-api":
		path := strings.TrimPrefix(w[5], DefaultPostAPI)
		r := c.api.serve(w[6], path)
		fmt.Fprintf(stdout, "%s\n%d", r.body, r.code)
		return nil
	case len(w) >= 8 && w[0] == "sh" && w[3] == "prapush-post-checks":
		io.WriteString(stdout, c.facts)
		return nil
	case len(w) == 2 && w[0] == "cat":
		if c.genFile == "" {
			return &transport.ExitError{Status: 1, Stderr: "cat: no such file"}
		}
		io.WriteString(stdout, c.genFile)
		return nil
	}
	c.t.Errorf("unexpected command %q", cmd)
	return &transport.ExitError{Status: 127}
}

func (c *fakeCore) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return nil, errors.New("not used")
}

func (c *fakeCore) Upload(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	return errors.New("not used")
}

func (c *fakeCore) Close() error { return nil }

// postObs records what an Observer is told.
type postObs struct {
	mu     sync.Mutex
	events []string
	checks []CheckResult
}

func (o *postObs) NodeEvent(node, phase, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, phase+": "+msg)
}

func (o *postObs) Check(r CheckResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.checks = append(o.checks, r)
}

func testPostOptions() PostOptions {
	return PostOptions{Node: "core", CoreIP: "10.0.0.1", NodeIPs: []string{"10.0.0.1", "10.0.0.2"}, ExternalURL: "mail.acme.example"}
}

func postByID(t testing.TB, rs []PostResult, id string) PostResult {
	t.Helper()
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no result %s in %+v", id, rs)
	return PostResult{}
}

var allPostIDs = []string{PostCoreState, PostResync, PostFirewall, PostMailRepair, PostCertificate,
	PostCheckServices, PostCheckConfig, PostCheckCert, PostCheckFirewall, PostCheckPostfix, PostCheckDataProt}

func postIDs(rs []PostResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestPostOperations_PollsEveryTaskFromInProgressToSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		for _, op := range c.api.ops {
			op.pollsNeeded = 3
		}
		obs := &postObs{}
		rs := PostOperations(t.Context(), c, testPostOptions(), obs)
		if fmt.Sprint(postIDs(rs)) != fmt.Sprint(allPostIDs) {
			t.Fatalf("results %v, want %v", postIDs(rs), allPostIDs)
		}
		var seen []string
		for _, r := range obs.checks {
			seen = append(seen, r.ID)
			if r.Node != "core" {
				t.Errorf("observer: result %s of node %q, want core", r.ID, r.Node)
			}
		}
		if fmt.Sprint(seen) != fmt.Sprint(allPostIDs) {
			t.Errorf("observer saw results %v, want each once, in order", seen)
		}
		if !slices.Contains(obs.events, "post: firewall.update started") {
			t.Errorf("observer events %q lack the start of firewall.update", obs.events)
		}
		for _, r := range rs {
			if r.Status != Pass {
				t.Errorf("%s: %s %q, want pass", r.ID, r.Status, r.Message)
			}
		}
		want := []string{"/api/dataprotect/_syncfs", "/api/system/security/_updatefirewallrules", "/api/system/maildelivery/mgmt/_repair", "/api/system/security"}
		if fmt.Sprint(c.api.posts) != fmt.Sprint(want) {
			t.Errorf("POSTs %v, want in order %v", c.api.posts, want)
		}
		for id, tk := range c.api.tasks {
			if tk.polls != 4 {
				t.Errorf("%s polled %d times, want 3 InProgress + the final one", id, tk.polls)
			}
		}
		if c.stdins != 0 {
			t.Errorf("%d commands were given a stdin from the workstation: the token must come from the node", c.stdins)
		}
		for _, cmd := range c.commands {
			if strings.Contains(cmd, "X-BM-ApiKey: ") && !strings.Contains(cmd, "%s") {
				t.Errorf("a command line carries an API key header value: %q", cmd)
			}
		}
	})
}

func TestPostOperations_InErrorFailsWithTheTaskMessageAndTheOthersStillRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.ops["/api/system/security/_updatefirewallrules"].final = "InError"
		c.api.ops["/api/system/security/_updatefirewallrules"].entry = "iptables: Permission denied"
		rs := PostOperations(t.Context(), c, testPostOptions(), nil)
		fw := postByID(t, rs, PostFirewall)
		if fw.Status != Fail || !strings.Contains(fw.Message, "InError: iptables: Permission denied") {
			t.Errorf("firewall.update %s %q, want fail with the task's message", fw.Status, fw.Message)
		}
		for _, id := range []string{PostResync, PostMailRepair, PostCertificate} {
			if r := postByID(t, rs, id); r.Status != Pass {
				t.Errorf("%s: %s %q: a failed operation must not stop the next ones", id, r.Status, r.Message)
			}
		}
	})
}

func TestPostOperations_InErrorWithoutEntryReportsTheLastLogLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		op := c.api.ops["/api/system/maildelivery/mgmt/_repair"]
		op.final, op.logs = "InError", []string{"starting", "postmap: fatal: open /etc/postfix/transport"}
		rs := PostOperations(t.Context(), c, testPostOptions(), nil)
		r := postByID(t, rs, PostMailRepair)
		if r.Status != Fail || !strings.Contains(r.Message, "postmap: fatal") {
			t.Errorf("mail.repair %s %q, want fail with the last log line", r.Status, r.Message)
		}
	})
}

func TestPostOperations_TaskThatNeverEndsTimesOutAndTheNextOperationRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.ops["/api/dataprotect/_syncfs"].final = "" // InProgress forever
		c.api.generation = `[{"id":312}]`
		o := testPostOptions()
		o.OpTimeout = 10 * time.Minute
		rs := PostOperations(t.Context(), c, o, nil)
		r := postByID(t, rs, PostResync)
		if r.Status != Fail || !r.TimedOut || !strings.Contains(r.Message, "not finished within 10m0s") {
			t.Errorf("dataprotect.resync %+v, want a timed-out failure", r)
		}
		polls := c.api.tasks["task-1"].polls
		// 250ms, 500ms, 1s, then every 2s.
		if want := 3 + int((o.OpTimeout-1750*time.Millisecond)/DefaultPollInterval); polls < want-1 || polls > want+1 {
			t.Errorf("polled %d times in %v at %v intervals", polls, o.OpTimeout, DefaultPollInterval)
		}
		if fw := postByID(t, rs, PostFirewall); fw.Status != Pass {
			t.Errorf("firewall.update %+v after the resync timed out, want pass", fw)
		}
		// The API still knows only the restored generation: after a
		// re-sync that did not finish, a warning (a failure is kept for a
		// re-sync that claimed success).
		if d := postByID(t, rs, PostCheckDataProt); d.Status != Warn {
			t.Errorf("check.dataprotect %+v, want warn", d)
		}
	})
}

func TestPostOperations_WaitsUntilTheCoreRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.stateSeq = []apiAnswer{
			{503, `{"errorCode":"UNKNOWN","message":"core stopped"}`},
			{200, `"CORE_STATE_STARTING"`},
			{200, `"CORE_STATE_RUNNING"`},
		}
		start := time.Now()
		rs := PostOperations(t.Context(), c, testPostOptions(), nil)
		if r := postByID(t, rs, PostCoreState); r.Status != Pass {
			t.Fatalf("core.state %+v", r)
		}
		if c.api.stateCalls != 3 {
			t.Errorf("state polled %d times, want 3", c.api.stateCalls)
		}
		if len(c.api.posts) != 4 {
			t.Errorf("POSTs %v, want the 4 operations once the core runs", c.api.posts)
		}
		if d := time.Since(start); d < postBackoff(0, DefaultPollInterval)+postBackoff(1, DefaultPollInterval) {
			t.Errorf("did not pause between polls (fake clock moved %v)", d)
		}
	})
}

func TestPostOperations_CoreNeverRunningFailsAndSendsNoOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.stateSeq = []apiAnswer{{200, `"CORE_STATE_MAINTENANCE"`}}
		o := testPostOptions()
		o.ReadyTimeout = 5 * time.Minute
		rs := PostOperations(t.Context(), c, o, nil)
		r := postByID(t, rs, PostCoreState)
		if r.Status != Fail || !r.TimedOut || !strings.Contains(r.Message, "CORE_STATE_MAINTENANCE") {
			t.Errorf("core.state %+v, want a timed-out failure naming the last state", r)
		}
		if len(c.api.posts) != 0 {
			t.Errorf("POSTs %v while the core was not running", c.api.posts)
		}
		for _, id := range []string{PostResync, PostFirewall, PostMailRepair, PostCertificate, PostCheckDataProt} {
			if r := postByID(t, rs, id); r.Status != Skip {
				t.Errorf("%s: %+v, want skip", id, r)
			}
		}
		// The file checks still run: they need no API.
		if r := postByID(t, rs, PostCheckServices); r.Status != Pass {
			t.Errorf("check.services %+v", r)
		}
	})
}

func TestPostOperations_RefusedTokenFailsAtOnce(t *testing.T) {
	c := newFakeCore(t)
	c.api.stateSeq = []apiAnswer{{401, `{"errorCode":"PERMISSION_DENIED","message":"invalid or missing X-BM-ApiKey"}`}}
	rs := PostOperations(t.Context(), c, testPostOptions(), nil)
	r := postByID(t, rs, PostCoreState)
	if r.Status != Fail || !strings.Contains(r.Message, "refused the token of /etc/bm/bm-core.tok") || r.TimedOut {
		t.Errorf("core.state %+v, want an immediate failure about the token", r)
	}
	if c.api.stateCalls != 1 {
		t.Errorf("state asked %d times: a refused token is not retried", c.api.stateCalls)
	}
}

func TestPostOperations_NoResyncIsAWarningAndSendsNoSyncfs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.generation = `[{"id":312}]` // what the restored database knows
		o := testPostOptions()
		o.NoResync = true
		rs := PostOperations(t.Context(), c, o, nil)
		r := postByID(t, rs, PostResync)
		if r.Status != Warn || !strings.Contains(r.Message, "next DataProtect backup") {
			t.Errorf("dataprotect.resync %+v, want a warning saying what the next backup does", r)
		}
		for _, p := range c.api.posts {
			if p == "/api/dataprotect/_syncfs" {
				t.Errorf("--no-resync sent %s", p)
			}
		}
		d := postByID(t, rs, PostCheckDataProt)
		if d.Status != Warn || !strings.Contains(d.Message, "[312]") {
			t.Errorf("check.dataprotect %+v, want a warning listing what the API knows", d)
		}
	})
}

func TestPostOperations_NoPostSendsOnlyTheResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		o := testPostOptions()
		o.NoPost = true
		o.RestoreEnded = time.Unix(c.now-60, 0)
		rs := PostOperations(t.Context(), c, o, nil)
		if fmt.Sprint(c.api.posts) != "[/api/dataprotect/_syncfs]" {
			t.Errorf("POSTs %v, want only the re-sync", c.api.posts)
		}
		for _, id := range []string{PostFirewall, PostMailRepair, PostCertificate} {
			if r := postByID(t, rs, id); r.Status != Skip {
				t.Errorf("%s %+v, want skip", id, r)
			}
		}
		if r := postByID(t, rs, PostCheckFirewall); r.Status != Pass || !strings.Contains(r.Message, "after the end of the restore") {
			t.Errorf("check.firewall %+v, want compared with the restore's end", r)
		}
	})
}

func TestPostOperations_HTTPErrorFailsWithTheAPIMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.ops["/api/dataprotect/_syncfs"].http = &apiAnswer{500, `{"errorCode":"UNKNOWN","message":"syncfs failed (lab knob)"}`}
		rs := PostOperations(t.Context(), c, testPostOptions(), nil)
		r := postByID(t, rs, PostResync)
		if r.Status != Fail || !strings.Contains(r.Message, "HTTP 500: UNKNOWN: syncfs failed (lab knob)") {
			t.Errorf("dataprotect.resync %+v", r)
		}
	})
}

func TestPostOperations_CancelledRunSaysWhatDidNotRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.api.ops["/api/system/security/_updatefirewallrules"].final = ""
		ctx, cancel := context.WithCancelCause(t.Context())
		go func() {
			time.Sleep(time.Minute)
			cancel(errors.New("interrupted by the operator"))
		}()
		rs := PostOperations(ctx, c, testPostOptions(), nil)
		if r := postByID(t, rs, PostResync); r.Status != Pass {
			t.Errorf("dataprotect.resync %+v", r)
		}
		if r := postByID(t, rs, PostFirewall); r.Status != Fail || !strings.Contains(r.Message, "interrupted by the operator") {
			t.Errorf("firewall.update %+v, want failed: interrupted", r)
		}
		for _, id := range []string{PostMailRepair, PostCertificate, PostCheckServices, PostCheckDataProt} {
			if r := postByID(t, rs, id); r.Status != Skip || !strings.Contains(r.Message, "not run: interrupted") {
				t.Errorf("%s %+v, want skip: not run", id, r)
			}
		}
	})
}

func TestPostOperations_DeadConnectionStopsEverything(t *testing.T) {
	synctest.Test(t, testDeadConnectionStopsEverything)
}

func testDeadConnectionStopsEverything(t *testing.T) {
	c := newFakeCore(t)
	c.failRun = func(cmd string) error {
		if strings.Contains(cmd, "_updatefirewallrules") {
			return fmt.Errorf("session: %w", transport.ErrUnreachable)
		}
		return nil
	}
	rs := PostOperations(t.Context(), c, testPostOptions(), nil)
	if r := postByID(t, rs, PostFirewall); r.Status != Fail {
		t.Errorf("firewall.update %+v", r)
	}
	for _, id := range []string{PostMailRepair, PostCheckPostfix} {
		if r := postByID(t, rs, id); r.Status != Skip || !strings.Contains(r.Message, "unreachable") {
			t.Errorf("%s %+v, want not run: unreachable", id, r)
		}
	}
	if len(c.api.posts) != 1 {
		t.Errorf("POSTs %v after the connection died", c.api.posts)
	}
}

func TestPostChecks_FindWhatTheCoreGotWrong(t *testing.T) {
	gen := `{"id":312,"protectionTime":1742000000000,"withErrors":false,"withWarnings":false,
	"blueMind":{"displayName":"4.8.2","major":"4","minor":"8","release":"2"},
	"parts":[{"id":2041,"generation":312,"tag":"bm/conf","server":"bm-master","valid":"VALID","begin":1,"end":2}]}`
	const now = 1_700_000_000
	stale := strconv.Itoa(now - 3600)
	cases := []struct {
		name    string
		edit    func(facts string) string
		opts    func(o *PostOptions)
		id      string
		status  Status
		message string
	}{
		{"healthy", nil, nil, PostCheckConfig, Pass, "bm.ini equals generation 312's copy"},
		{"bmctl fails", func(f string) string {
			return strings.Replace(f, "bmctl_rc=0", "bmctl_rc=1\nbmctl_line=bm-tika: inactive (dead)", 1)
		}, nil, PostCheckServices, Fail, "bm-tika: inactive (dead)"},
		{"bm-node inactive", func(f string) string { return strings.Replace(f, "bmnode=active", "bmnode=inactive", 1) }, nil, PostCheckServices, Fail, `"inactive"`},
		{"bm.ini differs", func(f string) string { return strings.Replace(f, "ini=aaa", "ini=bbb", 1) }, nil, PostCheckConfig, Fail, "differs from the backup's copy"},
		{"no generation", nil, func(o *PostOptions) { o.Generation = 0 }, PostCheckConfig, Pass, "restored generation unknown"},
		{"token owner", func(f string) string { return strings.Replace(f, "tok=440 root:www-data", "tok=644 root:root", 1) }, nil, PostCheckConfig, Fail, "bm-core.tok is 644 root:root"},
		{"no key", func(f string) string { return strings.Replace(f, "cert_key=1", "cert_key=0", 1) }, nil, PostCheckCert, Fail, "0 private key"},
		{"expired", func(f string) string { return strings.Replace(f, "cert_expired=0", "cert_expired=1", 1) }, nil, PostCheckCert, Fail, "expired"},
		{"other name", func(f string) string { return strings.Replace(f, "cert_names=2", "cert_names=0", 1) }, nil, PostCheckCert, Warn, "does not name mail.acme.example"},
		{"not a real certificate", func(f string) string {
			return strings.Replace(f, "cert_end=Mar 14 00:00:00 2035 GMT", "cert_end=unparsable", 1)
		}, nil, PostCheckCert, Warn, "openssl cannot read"},
		{"firewall lacks a node", func(f string) string { return strings.Replace(f, "fw_hosts=10.0.0.1 10.0.0.2", "fw_hosts=10.0.0.1", 1) }, nil, PostCheckFirewall, Fail, "bmHosts lacks 10.0.0.2"},
		{"firewall script stale", func(f string) string {
			return strings.Replace(f, "fw_mtime="+strconv.Itoa(now), "fw_mtime="+stale, 1)
		}, nil, PostCheckFirewall, Fail, "before this run's firewall.update"},
		{"firewall script missing", func(f string) string { return strings.Replace(f, "fw_mtime="+strconv.Itoa(now), "fw_mtime=missing", 1) }, nil, PostCheckFirewall, Fail, "bm-iptables missing"},
		{"one map stale", func(f string) string {
			return strings.Replace(f, "pf=virtual_alias "+strconv.Itoa(now), "pf=virtual_alias "+stale, 1)
		}, nil, PostCheckPostfix, Fail, "before this run's mail.repair"},
		{"one map missing", func(f string) string {
			return strings.Replace(f, "pf=transport "+strconv.Itoa(now), "pf=transport missing", 1)
		}, nil, PostCheckPostfix, Fail, "missing postfix maps: transport"},
		{"no postfix on the core", func(f string) string {
			for _, m := range []string{"transport", "virtual_alias", "virtual_domains", "virtual_mailbox", "master_relay_transport"} {
				f = strings.Replace(f, "pf="+m+" "+strconv.Itoa(now), "pf="+m+" missing", 1)
			}
			return f
		}, nil, PostCheckPostfix, Warn, "no postfix map"},
		{"generation file not in the API after the re-sync", func(f string) string {
			return strings.Replace(f, "genfile=generation-312.json", "genfile=generation-312.json\ngenfile=generation-313.json", 1)
		}, nil, PostCheckDataProt, Fail, "the store holds [310 311 312 313]"},
		{"script cut short", func(f string) string { return strings.Replace(f, "end=1\n", "", 1) }, nil, PostCheckServices, Fail, "not checked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newFakeCore(t)
				c.genFile = gen
				if tc.edit != nil {
					c.facts = tc.edit(c.facts)
				}
				o := testPostOptions()
				o.Generation = 312
				if tc.opts != nil {
					tc.opts(&o)
				}
				r := postByID(t, PostOperations(t.Context(), c, o, nil), tc.id)
				if r.Status != tc.status || !strings.Contains(r.Message, tc.message) {
					t.Errorf("%s: %s %q, want %s containing %q", tc.id, r.Status, r.Message, tc.status, tc.message)
				}
				if tc.name == "healthy" {
					for _, cmd := range c.commands {
						if w := postSplitWords(t, cmd); len(w) > 3 && w[3] == "prapush-post-checks" {
							want := "/var/backups/bluemind/dp_spool/rsync/10.0.0.1/bm/conf/2041/var/backups/bluemind/work/conf/etc/bm/bm.ini"
							if w[len(w)-1] != want {
								t.Errorf("bm.ini copy looked for at %q, want %q", w[len(w)-1], want)
							}
						}
					}
				}
			})
		})
	}
}

func TestPostOptionsFor_TakesTheCoreAndEveryNodeIP(t *testing.T) {
	inv := &inventory.Inventory{Architecture: testArch(), Nodes: []inventory.Node{testNode("core", "10.0.0.1", true), testNode("mail", "10.0.0.2", false)}}
	o, err := PostOptionsFor(inv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Node != "core" || o.CoreIP != "10.0.0.1" || fmt.Sprint(o.NodeIPs) != "[10.0.0.1 10.0.0.2]" || o.ExternalURL != "mail.acme.example" {
		t.Errorf("options %+v", o)
	}
	inv.Nodes = inv.Nodes[1:]
	if _, err := PostOptionsFor(inv); err == nil {
		t.Error("no error for an inventory without a core node")
	}
}

func TestBackoff_StartsShortAndDoublesUpToTheInterval(t *testing.T) {
	var got []time.Duration
	for n := range 6 {
		got = append(got, postBackoff(n, 2*time.Second))
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
	if d := postBackoff(3, 10*time.Millisecond); d != 10*time.Millisecond {
		t.Errorf("backoff under a 10ms interval: %v", d)
	}
}

func TestAPIReply_MessagePrefersTheAPIsOwn(t *testing.T) {
	cases := map[string]apiReply{
		"HTTP 500: UNKNOWN: boom":       {500, []byte(`{"errorCode":"UNKNOWN","message":"boom"}`)},
		"HTTP 502: Bad Gateway":         {502, nil},
		"HTTP 404: <html>nope</html>":   {404, []byte("<html>nope</html>\n")},
		"HTTP 400: only a message here": {400, []byte(`{"message":"only a message here"}`)},
	}
	for want, r := range cases {
		if got := r.String(); got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}

// With --no-post the operator does the firewall and mail maintenance by
// hand: their missing effects are warnings, not failures.
func TestPostOperations_NoPostTurnsMissingEffectsIntoWarnings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCore(t)
		c.facts = strings.Replace(c.facts, "fw_mtime=1700000000", "fw_mtime=missing", 1)
		o := testPostOptions()
		o.NoPost = true
		rs := PostOperations(t.Context(), c, o, nil)
		if r := postByID(t, rs, PostCheckFirewall); r.Status != Warn || !strings.Contains(r.Message, "by hand") {
			t.Errorf("check.firewall %+v, want a warning saying it is to do by hand", r)
		}
	})
}
