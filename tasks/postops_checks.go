package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prapush/prapush/transport"
)

// postCheckScript gathers, in one round trip, what the post-restore checks
// of domain §8.2 need on the core:
//
//	sh -c postCheckScript prapush-post-checks ROOT CERT-FILE EXTERNAL-URL STORE [BM.INI COPIES...]
//
// ROOT prefixes every absolute path ("" in production). The postfix maps
// are those BlueMind's mail maintenance rewrites (domain §4.6). It prints one
// key=value line per fact; values are single lines.
const postCheckScript = `root=$1 cert=$2 url=$3 store=$4
shift 4
sum() { s=$(sha256sum <"$1") && echo "${s%% *}"; }
echo "now=$(date +%s)"
if command -v bmctl >/dev/null 2>&1; then
	out=$(bmctl status 2>&1)
	echo "bmctl_rc=$?"
	printf '%s\n' "$out" | grep -v running | head -n 5 | tr -d '\r' | sed 's/^/bmctl_line=/'
else
	echo "bmctl_rc=missing"
fi
if command -v systemctl >/dev/null 2>&1; then
	echo "bmnode=$(systemctl is-active bm-node 2>&1 | head -n 1)"
else
	echo "bmnode=no systemctl"
fi
f=$root/etc/bm/bm.ini
[ -r "$f" ] && echo "ini=$(sum "$f")"
for b in "$@"; do
	[ -r "$b" ] && echo "inibak=$(sum "$b") $b"
done
t=$root/etc/bm/bm-core.tok
[ -e "$t" ] && echo "tok=$(stat -c '%a %U:%G' "$t")"
if [ -r "$cert" ]; then
	echo "cert_crt=$(grep -c -e '-----BEGIN CERTIFICATE-----' "$cert")"
	echo "cert_key=$(grep -c -e '-----BEGIN .*PRIVATE KEY-----' "$cert")"
	if command -v openssl >/dev/null 2>&1; then
		if end=$(openssl x509 -in "$cert" -noout -enddate 2>/dev/null); then
			echo "cert_end=${end#notAfter=}"
			openssl x509 -in "$cert" -noout -checkend 0 >/dev/null 2>&1
			echo "cert_expired=$?"
			[ -z "$url" ] || echo "cert_names=$(openssl x509 -in "$cert" -noout -text 2>/dev/null | grep -c -F -e "$url")"
		else
			echo "cert_end=unparsable"
		fi
	fi
else
	echo "cert_crt=missing"
fi
fw=$root/etc/init.d/bm-iptables
if [ -r "$fw" ]; then
	echo "fw_mtime=$(stat -c %Y "$fw")"
	echo "fw_hosts=$(sed -n 's/^[[:space:]]*bmHosts="\([^"]*\)".*/\1/p' "$fw" | head -n 1)"
else
	echo "fw_mtime=missing"
fi
for m in transport virtual_alias virtual_domains virtual_mailbox master_relay_transport; do
	p=$root/etc/postfix/$m.db
	if [ -e "$p" ]; then echo "pf=$m $(stat -c %Y "$p")"; else echo "pf=$m missing"; fi
done
for g in "$root$store"/generation-*.json; do
	[ -e "$g" ] && echo "genfile=${g##*/}"
done
echo "end=1"
`

// postFacts are the parsed output of postCheckScript.
type postFacts struct {
	vals  map[string]string   // single keys
	multi map[string][]string // repeated keys: bmctl_line, inibak, pf, genfile
}

func parsePostFacts(out string) postFacts {
	f := postFacts{vals: map[string]string{}, multi: map[string][]string{}}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "bmctl_line", "inibak", "pf", "genfile":
			f.multi[k] = append(f.multi[k], v)
		default:
			f.vals[k] = v
		}
	}
	return f
}

func (f postFacts) int(k string) (int64, bool) {
	n, err := strconv.ParseInt(f.vals[k], 10, 64)
	return n, err == nil
}

// checks appends the post-restore checks. apiUp says the core API answered.
func (p *poster) checks(ctx context.Context, apiUp bool) {
	ids := []string{PostCheckServices, PostCheckConfig, PostCheckCert, PostCheckFirewall, PostCheckPostfix, PostCheckDataProt}
	if p.stop != nil {
		for _, id := range ids {
			p.add(p.notRun(id))
		}
		return
	}
	p.event("post-restore checks")
	copies, genErr := p.iniCopies(ctx)
	args := append([]string{"sh", "-c", postCheckScript, "prapush-post-checks", p.o.root, p.o.root + p.o.CertFile, p.o.ExternalURL, StoreDir}, copies...)
	var out, errb bytes.Buffer
	err := p.conn.Run(ctx, transport.Quote(args...), nil, &out, &errb)
	f := parsePostFacts(out.String())
	if p.fatal(ctx, err) || f.vals["end"] != "1" {
		why := "the checks script did not finish"
		switch {
		case p.stop != nil:
			why = p.stop.Error()
		case err != nil:
			why = err.Error() + " " + truncate(strings.TrimSpace(errb.String()), 200)
		}
		for _, id := range ids {
			p.add(PostResult{ID: id, Status: Fail, Message: "not checked: " + why})
		}
		return
	}
	p.add(p.checkServices(f))
	p.add(p.checkConfig(f, genErr))
	p.add(p.checkCertificate(f))
	for _, r := range []PostResult{p.checkFirewall(f), p.checkPostfix(f)} {
		if p.o.NoPost && r.Status == Fail {
			// Their operations were skipped on request (--no-post): what
			// is missing is the operator's to do by hand, a warning.
			r.Status, r.Message = Warn, r.Message+" (--no-post: to do by hand)"
		}
		p.add(r)
	}
	p.add(p.checkDataProtect(ctx, f, apiUp))
}

// iniCopies returns the paths where the backup of the restored generation
// keeps the core's /etc/bm/bm.ini (bm/conf parts; bm/core in the legacy
// layout). The error says why none could be derived.
func (p *poster) iniCopies(ctx context.Context) ([]string, error) {
	if p.o.Generation <= 0 {
		return nil, nil
	}
	path := p.o.root + StoreDir + "/generation-" + strconv.Itoa(p.o.Generation) + ".json"
	var out bytes.Buffer
	if err := p.conn.Run(ctx, transport.Quote("cat", path), nil, &out, nil); err != nil {
		p.fatal(ctx, err)
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	g, _, err := ParseGeneration(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var paths []string
	base := p.o.root + StoreDir + "/dp_spool/rsync/" + p.o.CoreIP + "/"
	for _, part := range g.Parts {
		switch part.Tag {
		case "bm/conf":
			paths = append(paths, base+"bm/conf/"+strconv.Itoa(part.ID)+"/var/backups/bluemind/work/conf/etc/bm/bm.ini")
		case "bm/core":
			paths = append(paths, base+"bm/core/"+strconv.Itoa(part.ID)+"/var/backups/bluemind/conf/etc/bm/bm.ini")
		}
	}
	return paths, nil
}

// worst returns the most severe of statuses (fail > warn > pass).
func postWorst(a, b Status) Status {
	rank := map[Status]int{Pass: 0, Skip: 0, Warn: 1, Fail: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func (p *poster) checkServices(f postFacts) PostResult {
	r := PostResult{ID: PostCheckServices, Status: Pass}
	var msgs []string
	switch rc := f.vals["bmctl_rc"]; rc {
	case "0":
		msgs = append(msgs, "bmctl status: every unit running")
	case "missing":
		r.Status = Fail
		msgs = append(msgs, "bmctl not found")
	default:
		r.Status = Fail
		msg := "bmctl status exited " + rc
		if lines := f.multi["bmctl_line"]; len(lines) > 0 {
			msg += ": " + strings.Join(lines, "; ")
		}
		msgs = append(msgs, msg)
	}
	switch st := f.vals["bmnode"]; st {
	case "active":
		msgs = append(msgs, "bm-node active")
	case "no systemctl":
		msgs = append(msgs, "bm-node not checked (no systemctl)")
	default:
		r.Status = Fail
		msgs = append(msgs, "bm-node is "+strconv.Quote(st)+", not active")
	}
	r.Message = strings.Join(msgs, "; ")
	return r
}

func (p *poster) checkConfig(f postFacts, genErr error) PostResult {
	r := PostResult{ID: PostCheckConfig, Status: Pass}
	var msgs []string
	ini, ok := f.vals["ini"]
	switch {
	case !ok:
		r.Status = Fail
		msgs = append(msgs, "/etc/bm/bm.ini missing")
	case p.o.Generation <= 0:
		msgs = append(msgs, "bm.ini present (not compared with the backup: restored generation unknown)")
	case genErr != nil:
		r.Status = Warn
		msgs = append(msgs, "bm.ini not compared with the backup: "+genErr.Error())
	default:
		copies := f.multi["inibak"]
		var match string
		for _, c := range copies {
			sum, path, _ := strings.Cut(c, " ")
			if sum == ini {
				match = path
			}
		}
		switch {
		case len(copies) == 0:
			r.Status = Warn
			msgs = append(msgs, fmt.Sprintf("no copy of bm.ini for %s in generation %d's parts: not compared", p.o.CoreIP, p.o.Generation))
		case match != "":
			msgs = append(msgs, fmt.Sprintf("bm.ini equals generation %d's copy", p.o.Generation))
		default:
			r.Status = Fail
			_, path, _ := strings.Cut(copies[0], " ")
			msgs = append(msgs, "bm.ini differs from the backup's copy "+strings.TrimPrefix(path, p.o.root))
		}
	}
	switch tok := f.vals["tok"]; tok {
	case "440 root:www-data", "440 root:bluemind":
		msgs = append(msgs, "bm-core.tok "+tok)
	case "":
		r.Status = Fail
		msgs = append(msgs, "/etc/bm/bm-core.tok missing")
	default:
		r.Status = Fail
		msgs = append(msgs, "bm-core.tok is "+tok+", want 440 root:www-data (or root:bluemind)")
	}
	r.Message = strings.Join(msgs, "; ")
	return r
}

func (p *poster) checkCertificate(f postFacts) PostResult {
	r := PostResult{ID: PostCheckCert, Status: Pass}
	crt, key := f.vals["cert_crt"], f.vals["cert_key"]
	if crt == "missing" {
		r.Status, r.Message = Fail, p.o.CertFile+" missing"
		return r
	}
	nc, _ := strconv.Atoi(crt)
	nk, _ := strconv.Atoi(key)
	if nc < 1 || nk < 1 {
		r.Status, r.Message = Fail, fmt.Sprintf("%s holds %d certificate and %d private key blocks, want at least one of each", p.o.CertFile, nc, nk)
		return r
	}
	msgs := []string{fmt.Sprintf("%d certificate block(s) and a private key", nc)}
	switch end := f.vals["cert_end"]; end {
	case "":
		msgs = append(msgs, "validity not checked (no openssl)")
	case "unparsable":
		r.Status = Warn
		msgs = append(msgs, "openssl cannot read the first certificate")
	default:
		if f.vals["cert_expired"] != "0" {
			r.Status = Fail
			msgs = append(msgs, "expired ("+end+")")
		} else {
			msgs = append(msgs, "valid until "+end)
		}
		if n, ok := f.int("cert_names"); ok && n == 0 {
			r.Status = postWorst(r.Status, Warn)
			msgs = append(msgs, "does not name "+p.o.ExternalURL)
		}
	}
	r.Message = strings.Join(msgs, "; ")
	return r
}

// ref returns the epoch (node clock) a file rewritten by op must not
// predate, and what it is: this run's start when op succeeded in it, else
// the restore's end, else 0.
func (p *poster) ref(op string) (int64, string) {
	if p.ran[op] && p.start > 0 {
		return p.start, "this run's " + op
	}
	if !p.o.RestoreEnded.IsZero() {
		return p.o.RestoreEnded.Unix(), "the end of the restore"
	}
	return 0, ""
}

func postStamp(epoch int64) string { return time.Unix(epoch, 0).UTC().Format(time.RFC3339) }

func (p *poster) checkFirewall(f postFacts) PostResult {
	r := PostResult{ID: PostCheckFirewall, Status: Pass}
	if f.vals["fw_mtime"] == "missing" {
		r.Status, r.Message = Fail, "/etc/init.d/bm-iptables missing"
		return r
	}
	hosts := strings.Fields(f.vals["fw_hosts"])
	var lacking []string
	for _, ip := range p.o.NodeIPs {
		if !slices.Contains(hosts, ip) {
			lacking = append(lacking, ip)
		}
	}
	var msgs []string
	if len(lacking) > 0 {
		r.Status = Fail
		msgs = append(msgs, "bmHosts lacks "+strings.Join(lacking, ", ")+" (has: "+strings.Join(hosts, " ")+")")
	} else {
		msgs = append(msgs, fmt.Sprintf("bmHosts lists every node IP (%d)", len(p.o.NodeIPs)))
	}
	msgs = append(msgs, p.fresh(&r, "bm-iptables", f.vals["fw_mtime"], PostFirewall)...)
	r.Message = strings.Join(msgs, "; ")
	return r
}

// fresh compares a file's mtime with the reference of op.
func (p *poster) fresh(r *PostResult, what, mtime, op string) []string {
	ref, refWhat := p.ref(op)
	m, err := strconv.ParseInt(mtime, 10, 64)
	switch {
	case ref == 0:
		return []string{"not compared with the restore's end (unknown)"}
	case err != nil:
		r.Status = Fail
		return []string{what + ": unreadable mtime " + strconv.Quote(mtime)}
	case m < ref:
		r.Status = Fail
		return []string{fmt.Sprintf("%s written %s, before %s (%s)", what, postStamp(m), refWhat, postStamp(ref))}
	}
	return []string{"rewritten after " + refWhat}
}

func (p *poster) checkPostfix(f postFacts) PostResult {
	r := PostResult{ID: PostCheckPostfix, Status: Pass}
	var missing, present []string
	oldest := ""
	var oldestM int64 = -1
	for _, e := range f.multi["pf"] {
		name, v, _ := strings.Cut(e, " ")
		if v == "missing" {
			missing = append(missing, name)
			continue
		}
		present = append(present, name)
		if m, err := strconv.ParseInt(v, 10, 64); err == nil && (oldestM < 0 || m < oldestM) {
			oldestM, oldest = m, v
		}
	}
	switch {
	case len(present) == 0:
		r.Status, r.Message = Warn, "no postfix map (.db) on the core: if mail/smtp runs on another node, check its maps there"
		return r
	case len(missing) > 0:
		r.Status = Fail
		r.Message = "missing postfix maps: " + strings.Join(missing, ", ")
		return r
	}
	msgs := []string{fmt.Sprintf("%d postfix maps present", len(present))}
	msgs = append(msgs, p.fresh(&r, "the oldest map", oldest, PostMailRepair)...)
	r.Message = strings.Join(msgs, "; ")
	return r
}

func (p *poster) checkDataProtect(ctx context.Context, f postFacts, apiUp bool) PostResult {
	r := PostResult{ID: PostCheckDataProt}
	if !apiUp {
		r.Status, r.Message = Skip, "not checked: the core API is not running"
		return r
	}
	var files []int
	for _, name := range f.multi["genfile"] {
		if id, ok := GenerationFileID(name); ok {
			files = append(files, id)
		}
	}
	slices.Sort(files)
	ans, err := p.call(ctx, http.MethodGet, "/api/dataprotect/generations", "")
	if p.fatal(ctx, err) || err != nil || ans.Code != http.StatusOK {
		r.Status = Fail
		switch {
		case err != nil:
			r.Message = "GET /api/dataprotect/generations: " + err.Error()
		default:
			r.Message = "GET /api/dataprotect/generations: " + ans.String()
		}
		return r
	}
	var gens []struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(ans.Body, &gens); err != nil {
		r.Status, r.Message = Fail, "GET /api/dataprotect/generations: unreadable answer: "+err.Error()
		return r
	}
	var known []int
	for _, g := range gens {
		known = append(known, g.ID)
	}
	slices.Sort(known)
	if slices.Equal(known, files) {
		r.Status, r.Message = Pass, fmt.Sprintf("DataProtect knows the store's generations %v", files)
		return r
	}
	r.Status = Warn
	if p.ran[PostResync] {
		r.Status = Fail
	}
	r.Message = fmt.Sprintf("DataProtect knows generations %v, the store holds %v: the next backup would forget or purge the others (re-sync DataProtect first)", known, files)
	return r
}
