package tasks

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// Ids of the post-operation results, in the order PostOperations returns
// them (spec § Post-operations, domain §4.6 and §8.2).
const (
	PostCoreState      = "core.state"
	PostResync         = "dataprotect.resync"
	PostFirewall       = "firewall.update"
	PostMailRepair     = "mail.repair"
	PostCertificate    = "certificate.reinstall"
	PostCheckServices  = "check.services"
	PostCheckConfig    = "check.config"
	PostCheckCert      = "check.certificate"
	PostCheckFirewall  = "check.firewall"
	PostCheckPostfix   = "check.postfix"
	PostCheckDataProt  = "check.dataprotect"
	postPhase          = "post"
	postMessageMaxSize = 400
)

// Defaults of PostOptions.
const (
	// DefaultPostAPI is the core's local API: reached from the core itself,
	// so that neither the token nor the requests cross the network.
	DefaultPostAPI = "http://127.0.0.1:8090"
	// DefaultTokenFile holds the admin0 API key (domain §4.2).
	DefaultTokenFile = "/etc/bm/bm-core.tok"
	// DefaultCertFile is the certificate BlueMind serves: certificate,
	// private key and CA blocks concatenated (domain §4.6).
	DefaultCertFile = "/etc/ssl/certs/bm_cert.pem"
	// DefaultReadyTimeout bounds the wait for CORE_STATE_RUNNING: bm-core
	// takes minutes to start after a restore on a large installation.
	DefaultReadyTimeout = 15 * time.Minute
	// DefaultOpTimeout bounds one operation, task polling included.
	DefaultOpTimeout = 30 * time.Minute
	// DefaultPollInterval is the pause between two polls of the API.
	DefaultPollInterval = 2 * time.Second
)

// ResyncSkippedMessage is the warning of a run without the DataProtect
// re-sync (domain §2.3).
const ResyncSkippedMessage = "skipped (--no-resync): BlueMind's database only knows the restored generation; " +
	"the next DataProtect backup will forget it and purge the newer generations' files unless " +
	"DataProtect is re-synchronised with the backup store first (POST /api/dataprotect/_syncfs)"

// PostOptions configure PostOperations. The zero value of every duration
// and path means its default.
type PostOptions struct {
	// Node is the core node's name, used in Observer events.
	Node string
	// CoreIP is the core's address in the backup (dp_spool/rsync/<ip>):
	// where the backup's copy of /etc/bm/bm.ini is found.
	CoreIP string
	// NodeIPs are the IPs of every node of the architecture: the firewall
	// rules (bm-iptables) must allow each of them.
	NodeIPs []string
	// ExternalURL is the architecture's external URL: the certificate
	// should name it.
	ExternalURL string
	// Generation is the restored generation id (0 = unknown: the restored
	// bm.ini is then not compared with the backup's copy).
	Generation int
	// RestoreEnded is when the restore ended (zero = unknown). Without it,
	// and when this run did not rewrite them, the firewall script and the
	// postfix maps cannot be shown to be newer than the restore.
	RestoreEnded time.Time
	// NoResync skips the DataProtect re-sync: its result is then a warning.
	NoResync bool
	// NoPost skips the firewall, mail maintenance and certificate
	// operations (their results are skips); the checks still run.
	NoPost bool
	// ReadyTimeout bounds the wait for CORE_STATE_RUNNING.
	ReadyTimeout time.Duration
	// OpTimeout bounds each operation, from its request to the end of its
	// task.
	OpTimeout time.Duration
	// PollInterval is the longest pause between two polls of the state or
	// a task (the first pauses are shorter).
	PollInterval time.Duration
	// API is the base URL of the API as seen from the core.
	API string
	// TokenFile is the API token's file on the core. It is read there by
	// the shell and handed to curl through a pipe: it never appears on a
	// command line and never leaves the node.
	TokenFile string
	// CertFile is the certificate file reinstalled and checked.
	CertFile string

	// root prefixes the absolute paths the checks read (tests only).
	root string
}

// PostResult is the outcome of one post-operation or post-restore check.
type PostResult struct {
	ID      string
	Status  Status
	Message string
	// TimedOut says the operation (or the wait for the core) exceeded its
	// limit: exit code 4 of the spec.
	TimedOut bool
	Duration time.Duration
}

// PostOptionsFor returns the options of inv's architecture: the core node,
// every node's IP and the external URL. It fails when inv has no core node.
func PostOptionsFor(inv *inventory.Inventory) (PostOptions, error) {
	var o PostOptions
	for _, n := range inv.Nodes {
		o.NodeIPs = append(o.NodeIPs, n.IP.String())
		if n.Core {
			o.Node, o.CoreIP = n.Name, n.IP.String()
		}
	}
	if o.Node == "" {
		return o, errors.New("find the core node: the inventory has none")
	}
	o.ExternalURL = inv.Architecture.ExternalURL
	return o, nil
}

func (o PostOptions) withDefaults() PostOptions {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.API == "" {
		o.API = DefaultPostAPI
	}
	o.API = strings.TrimRight(o.API, "/")
	if o.TokenFile == "" {
		o.TokenFile = DefaultTokenFile
	}
	if o.CertFile == "" {
		o.CertFile = DefaultCertFile
	}
	return o
}

// PostOperations runs the automated post-operations on the core node over
// conn (the core's open connection), then the post-restore checks the
// core can show, and returns every result in a fixed order:
//
//	core.state             the local API answers CORE_STATE_RUNNING (waited for, bounded)
//	dataprotect.resync     POST /api/dataprotect/_syncfs (warn when opts.NoResync)
//	firewall.update        POST /api/system/security/_updatefirewallrules
//	mail.repair            POST /api/system/maildelivery/mgmt/_repair
//	certificate.reinstall  POST /api/system/security, CertData built on the node from CertFile
//	check.services         bmctl status, systemctl is-active bm-node
//	check.config           bm.ini equals the backup's copy; bm-core.tok mode and owner
//	check.certificate      CertFile holds a certificate and a private key (openssl view when possible)
//	check.firewall         bm-iptables lists every node IP and is newer than the restore
//	check.postfix          the postfix maps are newer than the restore
//	check.dataprotect      the generations the API knows are the store's generation files
//
// Each operation's task is polled to its end. An operation's failure does
// not stop the next ones (they are independent); a dead connection or ctx
// does, and the remaining results then say they did not run. The API token
// is read on the node and never appears on a command line, in a result or
// in an Observer event. Progress goes to obs as NodeEvent (phase "post"),
// each result, once known, as a Check of the core node.
func PostOperations(ctx context.Context, conn transport.Conn, opts PostOptions, obs Observer) []PostResult {
	if obs == nil {
		obs = NopObserver{}
	}
	p := &poster{conn: conn, o: opts.withDefaults(), obs: obs}
	return p.run(ctx)
}

// poster is one PostOperations call.
type poster struct {
	conn transport.Conn
	o    PostOptions
	obs  Observer
	res  []PostResult
	// stop, once set, is why nothing more can run (dead connection,
	// cancelled context).
	stop error
	// start is the node's clock when the operations began (0 = unknown):
	// the files an operation rewrites must not be older.
	start int64
	ran   map[string]bool // operations that succeeded in this call
}

func (p *poster) event(msg string) { p.obs.NodeEvent(p.o.Node, postPhase, msg) }

// add records r and reports it to the Observer as a check result of the
// core node, as soon as it is known.
func (p *poster) add(r PostResult) {
	r.Message = truncate(strings.TrimSpace(r.Message), postMessageMaxSize)
	p.res = append(p.res, r)
	p.obs.Check(CheckResult{ID: r.ID, Node: p.o.Node, Status: r.Status, Message: r.Message, Duration: r.Duration})
}

// fatal reports whether err leaves no way to go on: the connection is
// gone or ctx is done.
func (p *poster) fatal(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		return false
	}
	if ctx.Err() != nil {
		p.stop = context.Cause(ctx)
		return true
	}
	if errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrPrivilege) {
		p.stop = err
		return true
	}
	return false
}

func (p *poster) notRun(id string) PostResult {
	return PostResult{ID: id, Status: Skip, Message: "not run: " + p.stop.Error()}
}

func (p *poster) run(ctx context.Context) []PostResult {
	p.ran = map[string]bool{}
	p.event("waiting for the core API")
	ready := p.waitReady(ctx)
	p.add(ready)
	if p.stop == nil {
		p.start = p.nodeNow(ctx)
	}
	type op struct {
		id, path string
		cert     bool
	}
	ops := []op{
		{id: PostResync, path: "/api/dataprotect/_syncfs"},
		{id: PostFirewall, path: "/api/system/security/_updatefirewallrules"},
		{id: PostMailRepair, path: "/api/system/maildelivery/mgmt/_repair"},
		{id: PostCertificate, path: "/api/system/security", cert: true},
	}
	for _, o := range ops {
		switch {
		case o.id == PostResync && p.o.NoResync:
			p.add(PostResult{ID: o.id, Status: Warn, Message: ResyncSkippedMessage})
		case o.id != PostResync && p.o.NoPost:
			p.add(PostResult{ID: o.id, Status: Skip, Message: "skipped (--no-post): do it from the admin console"})
		case p.stop != nil:
			p.add(p.notRun(o.id))
		case ready.Status != Pass:
			p.add(PostResult{ID: o.id, Status: Skip, Message: "not run: the core API is not running; do it from the admin console once it is"})
		default:
			p.event(o.id + " started")
			r := p.operation(ctx, o.id, o.path, o.cert)
			if r.Status == Pass {
				p.ran[o.id] = true
			}
			p.add(r)
		}
	}
	p.checks(ctx, ready.Status == Pass)
	return p.res
}

// nodeNow reads the node's clock (epoch seconds), or 0.
func (p *poster) nodeNow(ctx context.Context) int64 {
	var out bytes.Buffer
	err := p.conn.Run(ctx, "date +%s", nil, &out, nil)
	if p.fatal(ctx, err) || err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	return n
}

// backoff returns the pause before poll n (0-based): short at first,
// because most tasks end within a second, then doubling up to limit.
func postBackoff(n int, limit time.Duration) time.Duration {
	d := 250 * time.Millisecond
	for range n {
		if d >= limit {
			break
		}
		d *= 2
	}
	return min(d, limit)
}

// sleep waits d or until ctx is done.
func postSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// since formats a duration for a message, to the second.
func postSince(t time.Time) string {
	return time.Since(t).Round(time.Second).String()
}
