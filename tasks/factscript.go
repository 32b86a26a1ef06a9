package tasks

import (
	"strconv"
	"strings"

	"github.com/prapush/prapush/inventory"
	"github.com/prapush/prapush/transport"
)

// StoreDir is the backup store the restore script hard-codes (domain §3.2).
const StoreDir = "/var/backups/bluemind"

// RunsDir holds prapush's run directories on a node (spec restore item 6).
const RunsDir = "/var/lib/prapush/runs"

// restoredPaths are where the parts of a node land once restored; disk.space
// measures the free space under each (its nearest existing parent).
var restoredPaths = []string{
	"/var/spool/cyrus",
	"/var/lib/postgresql",
	"/var/spool/bm-elasticsearch",
	"/var/spool/bm-filehosting",
	"/var/spool/bm-hsm",
}

// scriptRoots are the absolute roots the facts script reads. Production
// always uses defaultRoots; tests point them into a temporary tree. They are
// never taken from the inventory.
type scriptRoots struct {
	Store string // the backup store
	Etc   string // /etc
	Runs  string // prapush run directories
	Spool string // prefix of restoredPaths ("" in production)
	IPs   string // "" = parse `ip addr`; else comma list (tests only)
	Proc  string // /proc (tests point it elsewhere to be hermetic)
}

var defaultRoots = scriptRoots{Store: StoreDir, Etc: "/etc", Runs: RunsDir}

// probeName is the base name of the probe file node writes in temp/.
func probeName(runID, node string) string { return ".prapush-" + runID + "-" + node }

// factsPrelude is the shell helper library shared by the scripts. rec
// writes one framed record: a header "@@prapush <key> <len>" then exactly
// len bytes and a newline. LC_ALL=C makes ${#v} count bytes.
const factsPrelude = `LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH; export PATH
rec() { printf '@@prapush %s %d\n%s\n' "$1" "${#2}" "$2"; }
recf() { if [ -f "$2" ] && [ -r "$2" ]; then v=$(cat "$2" 2>/dev/null; echo x); rec "$1" "${v%x}"; fi; }
has() { command -v "$1" >/dev/null 2>&1; }
`

// factsBody is the facts script: every fact of domain §8.1 the checks
// need, then the probe file and the cross-node phase. It only reads, except
// the probe, which it removes before it ends. Every
// command may be missing: a record is then empty or absent, never a crash.
const factsBody = `rec uid "$(id -u 2>/dev/null)"
if [ -r "$ETC/os-release" ]; then recf os "$ETC/os-release"; else recf os /usr/lib/os-release; fi
[ -e "$PY" ] && rec py.exists 1
[ -f "$PY" ] && [ -x "$PY" ] && rec py.exec 1 && rec py.major "$("$PY" -c 'import sys; print(sys.version_info[0])' 2>&1 | head -c 300)"
if has dpkg-query; then
  rec pkg.mgr dpkg
  rec pkg.list "$(dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' 'bm-*' 2>/dev/null)"
elif has rpm; then
  rec pkg.mgr rpm
  rec pkg.list "$(rpm -qa 'bm-*' --qf '%{NAME} %{VERSION}-%{RELEASE} ii\n' 2>/dev/null)"
fi
if [ -e "$SCRIPT" ]; then
  rec sc.exists 1
  [ -f "$SCRIPT" ] && [ -x "$SCRIPT" ] && rec sc.exec 1
  has sha256sum && rec sc.sha256 "$(sha256sum < "$SCRIPT" 2>/dev/null)"
  # One pass for every family marker (grep -c per marker costs a process each).
  rec sc.scan "$(awk '/dt_string/ {d++} /tagget/ {t++} /THIS WILL NOT WORK/ {b++}
    /systemctl restart bm-elasticsearch|Waiting for ES cluster|Restarting Elasticsearch/ {e++}
    { while (match($0, /postgresql\/[0-9]+\//)) { print "pg " substr($0, RSTART, RLENGTH); $0 = substr($0, RSTART + RLENGTH) } }
    END { print "dt_string " d + 0; print "tagget " t + 0; print "bm5 " b + 0; print "es " e + 0 }' "$SCRIPT" 2>/dev/null)"
fi
[ -d "$ETC/postgresql" ] && rec pg.dirs "$(ls -1 "$ETC/postgresql" 2>/dev/null)"
if [ -f "$ETC/bm/bm.ini" ]; then
  rec bmini.present 1
  # Only the two keys: bm.ini also holds the database password.
  rec bmini.keys "$(grep -E '^[[:space:]]*(external-url|host)[[:space:]]*=' "$ETC/bm/bm.ini" 2>/dev/null)"
fi
[ -s "$ETC/bm/bm-core.tok" ] && rec tok 1
[ -r "$ETC/bm/server.uid" ] && rec serveruid "$(head -c 200 "$ETC/bm/server.uid" 2>/dev/null)"
if [ -n "$IPS" ]; then
  rec ipaddr "$(echo "$IPS" | tr ',' '\n' | sed 's|^|    inet |; s|$|/32|')"
elif has ip; then
  rec ipaddr "$(ip addr 2>/dev/null)"
fi
if [ -d "$STORE" ]; then
  rec store.isdir 1
  has stat && rec store.mount "$(stat --format %m "$STORE/" 2>/dev/null)"
  has findmnt && rec store.findmnt "$(findmnt -n -o SOURCE,FSTYPE,OPTIONS --target "$STORE" 2>/dev/null)"
  [ -d "$STORE/temp" ] && rec store.temp 1
  for d in "$STORE"/dp_spool/rsync/*/; do [ -d "$d" ] && d=${d%/} && rec rsync.dir "${d##*/}"; done
  times=
  for f in "$STORE"/generation-*.json; do
    [ -e "$f" ] || continue
    rec gen.name "${f##*/}"
    v=$(cat "$f" 2>/dev/null; echo x); v=${v%x}; rec gen.body "$v"
    # protectionTime/1000 as the script divides it, with expansions only.
    case $v in *'"protectionTime"'*)
      t=${v#*'"protectionTime"'}; t=${t#"${t%%[!	 :]*}"}; t=${t%%[!0-9]*}
      [ ${#t} -gt 3 ] && times="$times @${t%???}" ;;
    esac
  done
  # The menu's dates as this node renders them: one GNU date -f for all
  # (busybox has no -f: then nothing, and Go renders in the node's zone).
  if [ -n "$times" ]; then
    rec dates.in "$times"
    rec dates.out "$(printf '%s\n' $times | date -f - '+%Y-%m-%d %H:%M:%S' 2>/dev/null)"
  fi
  p="$STORE/dp_spool/rsync/"
  rec parts "$(for d in "$STORE"/dp_spool/rsync/*/*/*/*/; do [ -d "$d" ] && d=${d%/} && echo "${d#"$p"}"; done)"
fi
# Processes by command name (comm), so that a shell or client merely
# mentioning the words (this script included) is not taken for a restore or
# a backup. Reading /proc with builtins costs no process per entry.
n=0
for p in "$PROC"/[0-9]*; do
  [ $n -ge 20 ] && break
  c=
  { read -r c < "$p/comm"; } 2>/dev/null || continue
  case $c in
    python*|bm-pra-restore*) k=restore ;;
    rsync) k=rsync ;;
    *) continue ;;
  esac
  a=$(tr '\000' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-300)
  case $k:$a in
    restore:*bm-pra-restore*) ;;
    rsync:*"$STORE"*) ;;
    *) continue ;;
  esac
  rec proc "$k ${p##*/} $c $a"
  n=$((n+1))
done
# A run is live as the engine sees it: its wrapper's pid runs with the
# recorded start time, in this boot (run directories are kept: a reused pid
# or a reboot must not make an old one live).
for d in "$RUNS"/*/; do
  [ -d "$d" ] || continue
  alive "${d%/}" && rec run.live "${d%/}"
done
# One df for every restored path, each replaced by its nearest existing
# parent; df -P prints one line per argument, in order.
set --
for p in $SPOOLS; do
  q=$p
  while [ ! -e "$q" ]; do q=${q%/*}; [ -z "$q" ] && q=/ && break; done
  rec df.path "$p"
  set -- "$@" "$q"
done
[ $# -gt 0 ] && rec df "$(df -P -m "$@" 2>/dev/null)"
rec tz.link "$(readlink /etc/localtime 2>/dev/null)"
[ -r /etc/timezone ] && rec tz.file "$(head -c 100 /etc/timezone 2>/dev/null)"
rec tz.offset "$(date +%z 2>/dev/null)"
made=
if [ -n "$PROBE" ] && [ -d "$STORE" ]; then
  if e=$( { : > "$PROBE"; } 2>&1 ); then
    made=1
    rec probe.uid "$(stat -c %u "$PROBE" 2>/dev/null || ls -nd "$PROBE" | awk '{print $3}')"
  else
    rec probe.err "$e"
  fi
fi
if [ -n "$made" ]; then
  # The cross-node probe, in this same session: prapush sends the names of
  # the other probes once every node has written its own, then "rm" once
  # every node has looked. EOF (prapush gone) skips to the removal, so the
  # probe never outlives the session.
  rec phase1 ok
  if read -r others; then
    seen() { [ -e "$STORE/temp/$1" ] || ls -a "$STORE/temp/" 2>/dev/null | grep -qxF -e "$1"; }
    set -f
    i=0
    while :; do
      missing=0
      for p in $others; do seen "$p" || missing=1; done
      i=$((i+1))
      { [ $missing = 0 ] || [ $i -ge "$TRIES" ]; } && break
      sleep 1
    done
    for p in $others; do if seen "$p"; then rec seen "$p"; else rec missing "$p"; fi; done
    set +f
    rec phase2 ok
    read -r _ || :
  fi
  if e=$(rm -f "$PROBE" 2>&1) && [ ! -e "$PROBE" ]; then rec removed 1; else rec rmerr "$e"; fi
fi
rec end ok
`

// setVar renders an assignment with a quoted value.
func setVar(name, value string) string { return name + "=" + transport.QuoteArg(value) + "\n" }

// factsScript builds the facts script for node. Every interpolated value
// is quoted; runID "" disables the probe (and the script reads no stdin).
// With a probe, the script then waits on stdin for the cross-node phase
// (see Fleet.Verify); tries is how many times it looks for the others'
// probes, one second apart.
func factsScript(r scriptRoots, arch inventory.Architecture, n inventory.Node, runID string, tries int) string {
	var b strings.Builder
	b.WriteString("TRIES=" + strconv.Itoa(max(1, tries)) + "\n")
	b.WriteString(factsPrelude)
	b.WriteString(setVar("STORE", r.Store))
	b.WriteString(setVar("ETC", r.Etc))
	b.WriteString(setVar("RUNS", r.Runs))
	b.WriteString(setVar("IPS", r.IPs))
	proc := r.Proc
	if proc == "" {
		proc = "/proc"
	}
	b.WriteString(setVar("PROC", proc))
	b.WriteString(aliveFn)
	py := n.Python
	if py == "" {
		py = arch.Python
	}
	if py == "" {
		py = inventory.DefaultPython
	}
	sc := n.RestoreScript
	if sc == "" {
		sc = arch.RestoreScript
	}
	if sc == "" {
		sc = inventory.DefaultRestoreScript
	}
	b.WriteString(setVar("PY", py))
	b.WriteString(setVar("SCRIPT", sc))
	spools := make([]string, len(restoredPaths))
	for i, p := range restoredPaths {
		spools[i] = r.Spool + p
	}
	// SPOOLS is split by the shell on spaces: quote the whole list once,
	// each path is a fixed constant without spaces under a test prefix.
	b.WriteString(setVar("SPOOLS", strings.Join(spools, " ")))
	probe := ""
	if runID != "" {
		probe = r.Store + "/temp/" + probeName(runID, n.Name)
	}
	b.WriteString(setVar("PROBE", probe))
	b.WriteString(factsBody)
	return b.String()
}

// posixSh wraps a script so that a POSIX sh runs it whatever root's login
// shell is (SSH hands the command line to that shell, which may be csh or
// fish).
func posixSh(script string) string { return transport.Quote("sh", "-c", script) }
