package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prapush/prapush/transport"
)

// apiScript performs one request on the core's local API with curl:
//
//	sh -c apiScript prapush-api TOKEN-FILE URL METHOD BODY
//
// BODY is "" (no body) or "cert:FILE": the CertData JSON is then built on
// the node from the PEM blocks of FILE (first certificate, first private
// key, the other certificates as the CA), so that the private key never
// leaves the node either. The token is read by the shell and written into a
// curl config on curl's stdin by printf, a builtin: it is never an argument
// of any process, so ps never shows it. The body reaches curl on fd 3.
// Output: the response body, a newline, the HTTP status. Exit status: curl's,
// or 90-95 for what must be fixed on the node (stderr says what).
const apiScript = `tokfile=$1 url=$2 method=$3 body=$4
command -v curl >/dev/null 2>&1 || { echo "curl is not installed on the core node" >&2; exit 90; }
[ -r "$tokfile" ] || { echo "cannot read the API token file $tokfile" >&2; exit 91; }
tok=$(cat "$tokfile") || exit 91
case $tok in
'' | *[!A-Za-z0-9._~+/=-]*) echo "the API token file $tokfile is empty or holds unexpected characters" >&2; exit 92 ;;
esac
cfg() { printf 'header = "X-BM-ApiKey: %s"\n' "$tok"; }
case $body in
'')
	cfg | curl -sS --max-time 120 -K - -X "$method" -w '\n%{http_code}' "$url"
	exit ;;
cert:*) pem=${body#cert:} ;;
*) echo "unknown body $body" >&2; exit 95 ;;
esac
[ -r "$pem" ] || { echo "no certificate file $pem" >&2; exit 93; }
data=$(awk '
{ sub(/\r$/, "") }
/[\\"]/ || /[^ -~]/ { bad = 1 }
/^-----BEGIN / { inb = 1; blk = ""; kind = $0 }
inb { blk = blk $0 "\\n" }
inb && /^-----END / {
	inb = 0
	if (kind ~ /PRIVATE KEY-----$/) { if (key == "") key = blk }
	else if (kind == "-----BEGIN CERTIFICATE-----") { if (crt == "") crt = blk; else ca = ca blk }
}
END {
	if (bad) exit 3
	if (crt == "" || key == "") exit 4
	printf "{\"certificate\":\"%s\",\"privateKey\":\"%s\",\"certificateAuthority\":\"%s\"}", crt, key, ca
}' "$pem")
case $? in
0) ;;
3) echo "$pem holds characters a PEM file never holds" >&2; exit 94 ;;
*) echo "$pem does not hold both a certificate and a private key block" >&2; exit 94 ;;
esac
printf '%s' "$data" | { cfg | curl -sS --max-time 120 -K - -X "$method" -H 'Content-Type: application/json' --data-binary @/dev/fd/3 -w '\n%{http_code}' "$url"; } 3<&0
`

// apiSetupError is a failure that retrying cannot fix: curl missing, token
// or certificate unusable (exit statuses 90-95 of apiScript).
type apiSetupError struct{ msg string }

func (e *apiSetupError) Error() string { return e.msg }

// apiReply is one HTTP answer.
type apiReply struct {
	Code int
	Body []byte
}

// message is the API's error message (BlueMind answers errors with
// {"errorCode","message"}), or the body text.
func (r apiReply) message() string {
	var e struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(r.Body, &e) == nil && e.Message != "" {
		if e.ErrorCode != "" {
			return e.ErrorCode + ": " + e.Message
		}
		return e.Message
	}
	s := strings.TrimSpace(string(r.Body))
	if s == "" {
		return http.StatusText(r.Code)
	}
	return s
}

func (r apiReply) String() string { return fmt.Sprintf("HTTP %d: %s", r.Code, r.message()) }

// apiCmd is the command line of one request.
func apiCmd(tokenFile, url, method, body string) string {
	return transport.Quote("sh", "-c", apiScript, "prapush-api", tokenFile, url, method, body)
}

// call performs one request. The error is an *apiSetupError (terminal), a
// transport error (the connection or ctx), or a curl failure (the API did
// not answer; worth retrying).
func (p *poster) call(ctx context.Context, method, path, body string) (apiReply, error) {
	var out, errb bytes.Buffer
	err := p.conn.Run(ctx, apiCmd(p.o.root+p.o.TokenFile, p.o.API+path, method, body), nil, &out, &errb)
	stderr := strings.TrimSpace(errb.String())
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		if stderr == "" {
			stderr = strings.TrimSpace(ee.Stderr)
		}
		if ee.Status >= 90 && ee.Status <= 95 {
			return apiReply{}, &apiSetupError{msg: stderr}
		}
		if stderr == "" {
			stderr = ee.Error()
		}
		return apiReply{}, fmt.Errorf("request %s %s: curl exit %d: %s", method, path, ee.Status, stderr)
	}
	if err != nil {
		return apiReply{}, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	b := out.Bytes()
	i := bytes.LastIndexByte(b, '\n')
	code, cerr := strconv.Atoi(strings.TrimSpace(string(b[i+1:])))
	if i < 0 || cerr != nil {
		return apiReply{}, fmt.Errorf("request %s %s: no HTTP status in curl's output", method, path)
	}
	return apiReply{Code: code, Body: b[:i]}, nil
}

func apiRefused(code int) bool {
	return code == http.StatusUnauthorized || code == http.StatusForbidden
}

const tokenRefused = "the API refused the token of "

// waitReady polls the installation state until CORE_STATE_RUNNING, at
// most ReadyTimeout.
func (p *poster) waitReady(ctx context.Context) PostResult {
	start := time.Now()
	res := PostResult{ID: PostCoreState}
	last := "no answer yet"
	for n := 0; ; n++ {
		r, err := p.call(ctx, http.MethodGet, "/api/system/installation/state", "")
		var se *apiSetupError
		switch {
		case p.fatal(ctx, err):
			res.Status, res.Message = Fail, "waiting for the core API: "+p.stop.Error()
			return res
		case errors.As(err, &se):
			res.Status, res.Message = Fail, se.msg
			return res
		case err != nil:
			last = err.Error()
		case apiRefused(r.Code):
			res.Status, res.Message = Fail, tokenRefused+p.o.TokenFile+" ("+r.String()+")"
			return res
		case r.Code == http.StatusOK:
			var state string
			if json.Unmarshal(r.Body, &state) != nil {
				state = strings.Trim(strings.TrimSpace(string(r.Body)), `"`)
			}
			if state == "CORE_STATE_RUNNING" {
				res.Status, res.Message = Pass, "CORE_STATE_RUNNING (waited "+postSince(start)+")"
				res.Duration = time.Since(start)
				return res
			}
			last = "state " + state
		default:
			last = r.String()
		}
		pause := postBackoff(n, p.o.PollInterval)
		if time.Since(start)+pause > p.o.ReadyTimeout {
			res.Status, res.TimedOut = Fail, true
			res.Message = fmt.Sprintf("the core API did not answer CORE_STATE_RUNNING within %v (last: %s)", p.o.ReadyTimeout, last)
			res.Duration = time.Since(start)
			return res
		}
		if err := postSleep(ctx, pause); err != nil {
			p.fatal(ctx, err)
			res.Status, res.Message = Fail, "waiting for the core API: "+err.Error()
			return res
		}
	}
}

// taskStatus is BlueMind's TaskStatus (domain §4.6).
type taskStatus struct {
	State        string          `json:"state"`
	Progress     float64         `json:"progress"`
	LastLogEntry string          `json:"lastLogEntry"`
	Result       json.RawMessage `json:"result"`
}

// taskIDRe is what a TaskRef id may look like before it is put in a path.
var taskIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// operation posts one operation and polls its task to the end.
func (p *poster) operation(ctx context.Context, id, path string, cert bool) PostResult {
	start := time.Now()
	res := PostResult{ID: id}
	done := func(st Status, msg string) PostResult {
		res.Status, res.Message, res.Duration = st, msg, time.Since(start)
		return res
	}
	body := ""
	if cert {
		body = "cert:" + p.o.root + p.o.CertFile
	}
	r, err := p.call(ctx, http.MethodPost, path, body)
	var se *apiSetupError
	switch {
	case p.fatal(ctx, err):
		return done(Fail, "interrupted: "+p.stop.Error())
	case errors.As(err, &se):
		return done(Fail, se.msg)
	case err != nil:
		return done(Fail, err.Error())
	case apiRefused(r.Code):
		return done(Fail, tokenRefused+p.o.TokenFile+" ("+r.String()+")")
	case r.Code < 200 || r.Code > 299:
		return done(Fail, "POST "+path+": "+r.String())
	}
	var ref struct {
		ID any `json:"id"`
	}
	if len(bytes.TrimSpace(r.Body)) == 0 || json.Unmarshal(r.Body, &ref) != nil || ref.ID == nil {
		// A void operation (updateCertificate in 4.x): done when answered.
		return done(Pass, "POST "+path+": HTTP "+strconv.Itoa(r.Code))
	}
	tid := fmt.Sprint(ref.ID)
	if f, ok := ref.ID.(float64); ok {
		tid = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if !taskIDRe.MatchString(tid) {
		return done(Fail, "POST "+path+": unexpected task id in "+truncate(string(r.Body), 100))
	}
	return p.poll(ctx, tid, start, done)
}

// poll follows task tid until Success or InError, at most OpTimeout from
// start. Failed polls (the API restarting, curl timing out) are retried
// until then; an unknown task is not.
func (p *poster) poll(ctx context.Context, tid string, start time.Time, done func(Status, string) PostResult) PostResult {
	last := "no answer yet"
	for n := 0; ; n++ {
		r, err := p.call(ctx, http.MethodGet, "/api/tasks/"+tid, "")
		var se *apiSetupError
		switch {
		case p.fatal(ctx, err):
			return done(Fail, "task "+tid+": interrupted: "+p.stop.Error())
		case errors.As(err, &se):
			return done(Fail, "task "+tid+": "+se.msg)
		case err != nil:
			last = err.Error()
		case apiRefused(r.Code):
			return done(Fail, "task "+tid+": "+tokenRefused+p.o.TokenFile+" ("+r.String()+")")
		case r.Code == http.StatusNotFound:
			return done(Fail, "task "+tid+" is unknown to the API (did bm-core restart?): "+r.String())
		case r.Code != http.StatusOK:
			last = r.String()
		default:
			var ts taskStatus
			if err := json.Unmarshal(r.Body, &ts); err != nil {
				last = "unreadable task status: " + truncate(string(r.Body), 100)
				break
			}
			switch ts.State {
			case "Success":
				msg := "task " + tid + " succeeded in " + postSince(start)
				if ts.LastLogEntry != "" {
					msg += " (" + ts.LastLogEntry + ")"
				}
				return done(Pass, msg)
			case "InError":
				why := ts.LastLogEntry
				if why == "" {
					why = p.lastLog(ctx, tid)
				}
				if why == "" && len(ts.Result) > 0 && string(ts.Result) != "null" {
					why = string(ts.Result)
				}
				if why == "" {
					why = "no message"
				}
				return done(Fail, "task "+tid+" ended InError: "+why)
			}
			last = fmt.Sprintf("%s %.0f%%", ts.State, ts.Progress*100)
			if ts.LastLogEntry != "" {
				last += ": " + ts.LastLogEntry
			}
		}
		pause := postBackoff(n, p.o.PollInterval)
		if time.Since(start)+pause > p.o.OpTimeout {
			res := done(Fail, fmt.Sprintf("task %s not finished within %v (last: %s)", tid, p.o.OpTimeout, last))
			res.TimedOut = true
			return res
		}
		if err := postSleep(ctx, pause); err != nil {
			p.fatal(ctx, err)
			return done(Fail, "task "+tid+": interrupted: "+err.Error())
		}
	}
}

// lastLog returns the last line of a task's logs, or "".
func (p *poster) lastLog(ctx context.Context, tid string) string {
	r, err := p.call(ctx, http.MethodGet, "/api/tasks/"+tid+"/_currentLogs", "")
	if err != nil || r.Code != http.StatusOK {
		p.fatal(ctx, err)
		return ""
	}
	var lines []string
	if json.Unmarshal(r.Body, &lines) != nil || len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
