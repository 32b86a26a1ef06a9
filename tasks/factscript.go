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
	Dpkg  string // dpkg's status database ("" = dpkgStatus)
	Awk   string // the awk to run ("" = awk; tests try each implementation)
}

// dpkgStatus is dpkg's database of installed packages.
const dpkgStatus = "/var/lib/dpkg/status"

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
// the probe, which it removes before it ends. Every command may be missing:
// a record is then empty or absent, never a crash.
//
// Cost matters: verify runs it on every node at once, and a process costs
// about a millisecond of CPU where a shell builtin costs microseconds. So
// the shell only tests, globs and reads one-line files with builtins; the
// files the facts need are read by ONE awk (factsAwk), which also scans
// /proc; the other processes are df and the probe's rm, and python,
// sha256sum, rpm, ip, readlink or date only where they are needed.
const factsBody = `nl='
'
readable() { [ -f "$1" ] && [ -r "$1" ]; }
# What awk reads, as "task path" pairs in the positional parameters.
set --
if readable /proc/self/status; then set -- "$@" uid /proc/self/status; else rec uid "$(id -u 2>/dev/null)"; fi
if readable "$ETC/os-release"; then set -- "$@" os "$ETC/os-release"
elif readable /usr/lib/os-release; then set -- "$@" os /usr/lib/os-release; fi
[ -e "$PY" ] && rec py.exists 1
[ -f "$PY" ] && [ -x "$PY" ] && rec py.exec 1 && rec py.major "$("$PY" -c 'import sys; print(sys.version_info[0])' 2>&1 | head -c 300)"
if has dpkg-query; then
  # dpkg's database is read directly: dpkg-query costs more than all the rest.
  rec pkg.mgr dpkg
  readable "$DPKG" && set -- "$@" dpkg "$DPKG"
elif has rpm; then
  rec pkg.mgr rpm
  rec pkg.list "$(rpm -qa 'bm-*' --qf '%{NAME} %{VERSION}-%{RELEASE} ii\n' 2>/dev/null)"
fi
if [ -e "$SCRIPT" ]; then
  rec sc.exists 1
  [ -f "$SCRIPT" ] && [ -x "$SCRIPT" ] && rec sc.exec 1
  if readable "$SCRIPT"; then
    has sha256sum && rec sc.sha256 "$(sha256sum < "$SCRIPT" 2>/dev/null)"
    set -- "$@" script "$SCRIPT"
  fi
fi
if [ -d "$ETC/postgresql" ]; then
  v=
  for d in "$ETC"/postgresql/*; do [ -e "$d" ] && v="$v${d##*/}$nl"; done
  rec pg.dirs "$v"
fi
if [ -f "$ETC/bm/bm.ini" ]; then
  rec bmini.present 1
  # awk keeps only the two keys: bm.ini also holds the database password.
  readable "$ETC/bm/bm.ini" && set -- "$@" bmini "$ETC/bm/bm.ini"
fi
[ -s "$ETC/bm/bm-core.tok" ] && rec tok 1
readable "$ETC/bm/server.uid" && set -- "$@" serveruid "$ETC/bm/server.uid"
RSYNCDIRS=
CSTORE=
if [ -d "$STORE" ]; then
  rec store.isdir 1
  # The store's physical path, for awk to find its mount in mountinfo.
  if cd -P "$STORE" 2>/dev/null; then
    CSTORE=$PWD
    cd /
    readable /proc/self/mountinfo && set -- "$@" mounts /proc/self/mountinfo
  fi
  [ -d "$STORE/temp" ] && rec store.temp 1
  for d in "$STORE"/dp_spool/rsync/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    rec rsync.dir "${d##*/}"
    RSYNCDIRS="$RSYNCDIRS ${d##*/}"
  done
  for f in "$STORE"/generation-*.json; do
    [ -e "$f" ] || continue
    if readable "$f"; then set -- "$@" gen "$f"; else set -- "$@" genx "$f"; fi
  done
  p="$STORE/dp_spool/rsync/" v=
  for d in "$STORE"/dp_spool/rsync/*/*/*/*/; do [ -d "$d" ] && d=${d%/} && v="$v${d#"$p"}$nl"; done
  rec parts "${v%"$nl"}"
fi
ipaddr() {
  if [ -n "$IPS" ]; then
    rec ipaddr "$(echo "$IPS" | tr ',' '\n' | sed 's|^|    inet |; s|$|/32|')"
  elif has ip; then
    rec ipaddr "$(ip addr 2>/dev/null)"
  fi
}
# The node's IPv4 addresses: /proc/net/fib_trie lists them (awk reads it),
# but not in the order the script walks them: awk exits 3 when that order
# matters (two of them have a part directory), and ip addr then tells it.
fib=
[ -z "$IPS" ] && readable /proc/net/fib_trie && fib=1 && set -- "$@" fib /proc/net/fib_trie
export STORE CSTORE RSYNCDIRS
if has "$AWK"; then
  "$AWK" "$FACTS_AWK" "$@" --procs "$PROC"/[0-9]*
  st=$?
  rec awk "$st"
  case $st in
    0) [ -n "$fib" ] || ipaddr ;;
    3) ipaddr ;;
    *)
      # A read error stops awk (mawk does): an I/O error on the store, or
      # a process that ended between the open and the read of its /proc
      # entry. The records tell what was read before; the /proc scan is
      # worth a second try.
      ipaddr
      "$AWK" "$FACTS_AWK" --rescan "$PROC"/[0-9]*
      rec awk.procs "$?" ;;
  esac
else
  rec awk missing
  ipaddr
fi
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
# The zone: /etc/timezone names it when /etc/localtime is that zone's file
# (no readlink then), else the link names it; the offset only when neither
# does, or for a restore plan.
tzf=
[ -r /etc/timezone ] && { IFS= read -r tzf < /etc/timezone; } 2>/dev/null
[ ${#tzf} -le 100 ] || tzf=
[ -n "$tzf" ] && rec tz.file "$tzf"
link=
case $tzf in
  ''|*..*) link=$(readlink /etc/localtime 2>/dev/null) ;;
  *) [ /etc/localtime -ef "/usr/share/zoneinfo/$tzf" ] || link=$(readlink /etc/localtime 2>/dev/null) ;;
esac
[ -n "$link" ] && rec tz.link "$link"
{ [ -n "$DATES" ] || [ -z "$tzf$link" ]; } && rec tz.offset "$(date +%z 2>/dev/null)"
# The menu's dates as this node renders them, for a restore plan (its menu
# line is compared with the script's): one GNU date -f for all (busybox
# has no -f: then nothing, and Go renders in the node's zone).
if [ -n "$DATES" ] && [ -d "$STORE" ] && has "$AWK"; then
  times=$("$AWK" "$FACTS_AWK" --times "$STORE"/generation-*.json 2>/dev/null)
  if [ -n "$times" ]; then
    rec dates.in "$times"
    rec dates.out "$(echo "$times" | date -f - '+%Y-%m-%d %H:%M:%S' 2>/dev/null)"
  fi
fi
made=
if [ -n "$PROBE" ] && [ -d "$STORE" ]; then
  # Without a subshell first, the message only when that fails. true, not
  # ":": a redirection error on a special builtin ends the whole script.
  if { true > "$PROBE"; } 2>/dev/null || e=$( { true > "$PROBE"; } 2>&1 ); then
    made=1
    # Owned by this (effective) user is the usual case, told without stat.
    if [ -O "$PROBE" ]; then rec probe.own 1
    else rec probe.uid "$(stat -c %u "$PROBE" 2>/dev/null || ls -nd "$PROBE" | awk '{print $3}')"; fi
  else
    rec probe.err "$e"
  fi
fi
if [ -n "$made" ]; then
  # The cross-node probe, in this same session: prapush sends the names of
  # the other probes once every node has written its own, then "rm" once
  # every node has looked. EOF (prapush gone) skips to the removal, so the
  # probe never outlives the session. The names missing come back in one
  # record: a record per name would cost a write (and a packet) each.
  rec phase1 ok
  if read -r others; then
    seen() { [ -e "$STORE/temp/$1" ] || ls -a "$STORE/temp/" 2>/dev/null | grep -qxF -e "$1"; }
    set -f
    i=0
    while :; do
      missing=
      for p in $others; do seen "$p" || missing="$missing $p"; done
      i=$((i+1))
      { [ -z "$missing" ] || [ $i -ge "$TRIES" ]; } && break
      sleep 1
    done
    set +f
    rec missing "$missing"
    rec phase2 ok
    read -r _ || :
  fi
  if e=$(rm -f "$PROBE" 2>&1) && [ ! -e "$PROBE" ]; then rec removed 1; else rec rmerr "$e"; fi
fi
rec end ok
`

// factsAwk reads the files the facts need, in one process. Its operands
// are "task path" pairs, then "--procs" and /proc's pid directories (or
// "--rescan" and those directories only: the /proc scan again; or "--times"
// and generation files: print their protection times, unframed).
// It writes framed records like rec; RS is switched per file: a byte no
// text file holds to read a file whole, "\n" for lines, "" for paragraphs.
// It exits 3 when the node's IPv4 addresses must be listed in ip addr's
// order (more than one of them has a part directory). Only POSIX awk: it
// runs with mawk (Debian), gawk (RHEL) and busybox. String functions rather
// than regular expressions: mawk compiles every regex literal at start-up,
// which cost more than the reading.
const factsAwk = `function rec(k, v) { printf "@@prapush %s %d\n%s\n", k, length(v), v }
function slurp(f,   v, w, r) {
  RS = "\001"; ok = 0; v = ""
  r = (getline v < f)
  if (r >= 0) ok = 1
  if (r > 0) while ((getline w < f) > 0) v = v "\001" w
  close(f)
  return v
}
function base(f,   j) { while ((j = index(f, "/")) > 0) f = substr(f, j + 1); return f }
function has(s, p) { return substr(s, 1, length(p)) == p }
function uid(f,   l, u) {
  RS = "\n"
  while ((getline l < f) > 0) if (has(l, "Uid:")) { split(l, u); rec("uid", u[3]) }
  close(f)
}
function dpkg(f,   p, n, L, j, pkg, ver, st, S, out) {
  RS = ""
  while ((getline p < f) > 0) {
    if (index(p, "Package: bm-") == 0) continue
    n = split(p, L, "\n"); pkg = ""; ver = ""; st = ""
    for (j = 1; j <= n; j++) {
      if (has(L[j], "Package: ")) pkg = substr(L[j], 10)
      else if (has(L[j], "Version: ")) ver = substr(L[j], 10)
      else if (has(L[j], "Status: ")) st = substr(L[j], 9)
    }
    if (!has(pkg, "bm-") || split(st, S, " ") != 3) continue
    # dpkg forgets a not-installed package nobody asked for (as it reads
    # its database), then dpkg-query's ${db:Status-Abbrev}: want, state,
    # error flag.
    if (S[3] == "not-installed" && S[1] != "install" && S[1] != "hold") { S[1] = "unknown"; ver = "" }
    out = out pkg " " ver " " WANT[S[1]] STATE[S[3]] EFLAG[S[2]] "\n"
  }
  close(f)
  rec("pkg.list", out)
}
# The script's family markers, and the PostgreSQL data paths it names.
function scan(f,   l, d, t, b, e, j, v, out) {
  RS = "\n"
  while ((getline l < f) > 0) {
    if (index(l, "dt_string")) d++
    if (index(l, "tagget")) t++
    if (index(l, "THIS WILL NOT WORK")) b++
    if (index(l, "systemctl restart bm-elasticsearch") || index(l, "Waiting for ES cluster") || index(l, "Restarting Elasticsearch")) e++
    while ((j = index(l, "postgresql/")) > 0) {
      l = substr(l, j + 11); v = ""
      while (index("0123456789", substr(l, 1, 1)) && l != "") { v = v substr(l, 1, 1); l = substr(l, 2) }
      if (v != "" && substr(l, 1, 1) == "/") out = out "pg postgresql/" v "/\n"
    }
  }
  close(f)
  rec("sc.scan", out "dt_string " (d + 0) "\ntagget " (t + 0) "\nbm5 " (b + 0) "\nes " (e + 0))
}
function ltrim(s) { while (substr(s, 1, 1) == " " || substr(s, 1, 1) == "\t") s = substr(s, 2); return s }
# Only the lines of external-url and host: bm.ini also holds the password.
function bmini(f,   l, k, out) {
  RS = "\n"
  while ((getline l < f) > 0) {
    k = ltrim(l)
    if (has(k, "external-url")) k = substr(k, 13); else if (has(k, "host")) k = substr(k, 5); else continue
    if (has(ltrim(k), "=")) out = out l "\n"
  }
  close(f)
  rec("bmini.keys", out)
}
# mountinfo's escapes: \040 (space), \011, \012, \134 (backslash).
function unesc(s,   out, j, c) {
  out = ""
  while ((j = index(s, "\\")) > 0) {
    c = substr(s, j + 1, 3)
    if (length(c) == 3 && index("01234567", substr(c, 1, 1)) && index("01234567", substr(c, 2, 1)) && index("01234567", substr(c, 3, 1))) {
      out = out substr(s, 1, j - 1) sprintf("%c", substr(c, 1, 1) * 64 + substr(c, 2, 1) * 8 + substr(c, 3, 1))
      s = substr(s, j + 4)
    } else { out = out substr(s, 1, j); s = substr(s, j + 1) }
  }
  return out s
}
# The mount the store is on: the longest mount point above its physical
# path, the last one mounted when several share it (as stat %m and findmnt
# --target tell). Options: the mount's, then its file system's.
function mounts(f,   l, F, n, x, mp, cs, best, bl, line, o, O, j) {
  RS = "\n"; cs = ENVIRON["CSTORE"]; bl = -1
  while ((getline l < f) > 0) {
    n = split(l, F, " ")
    mp = unesc(F[5])
    if (!(mp == "/" || cs == mp || has(cs, mp "/")) || length(mp) < bl) continue
    for (x = 7; x <= n && F[x] != "-"; x++) ;
    o = F[6]
    j = split(F[x + 3], O, ",")
    for (; j > 0; j--) if (index("," o ",", "," O[j] ",") == 0) o = o "," O[j]
    best = mp; bl = length(mp); line = F[x + 2] " " F[x + 1] " " o
  }
  close(f)
  if (bl >= 0) { rec("store.mount", best); rec("store.findmnt", line) }
}
# The local addresses: the "/32 host LOCAL" entries, each under its
# "|-- address" line.
function fib(f,   l, a, j, seen, n, ips, D, k) {
  RS = "\n"; n = 0
  while ((getline l < f) > 0) {
    if ((j = index(l, "|-- ")) > 0) a = substr(l, j + 4)
    else if (index(l, "/32 host LOCAL") && !(a in seen)) { seen[a] = 1; ips = ips "    inet " a "/32\n" }
  }
  close(f)
  split(ENVIRON["RSYNCDIRS"], D, " ")
  for (k in D) if (D[k] in seen) n++
  if (n > 1) needip = 1
  else rec("ipaddr", ips)
}
# Processes by command name (comm), so that a shell or client merely
# mentioning the words is not taken for a restore or a backup.
function procs(i,   m, d, c, k, a, f, r, A, n, j) {
  m = 0
  for (; i < ARGC && m < 20; i++) {
    d = ARGV[i]; c = ""; f = d "/comm"
    RS = "\n"; r = (getline c < f); close(f)
    if (r <= 0) continue
    if (has(c, "python") || has(c, "bm-pra-restore")) k = "restore"
    else if (c == "rsync") k = "rsync"
    else continue
    f = d "/cmdline"; a = ""
    RS = "\001"; getline a < f; close(f)
    n = split(a, A, "\0"); a = A[1]
    for (j = 2; j <= n; j++) a = a " " A[j]
    a = substr(a, 1, 300)
    if (k == "restore" && index(a, "bm-pra-restore") == 0) continue
    if (k == "rsync" && index(a, ENVIRON["STORE"]) == 0) continue
    rec("proc", k " " base(d) " " c " " a); m++
  }
  rec("procs", "done")
}
# --times: protectionTime / 1000, as the script divides it.
function times(i,   v, j, t) {
  for (; i < ARGC; i++) {
    v = slurp(ARGV[i])
    if ((j = index(v, "\"protectionTime\"")) == 0) continue
    v = substr(v, j + 16)
    while (index("\t :", substr(v, 1, 1)) && v != "") v = substr(v, 2)
    t = ""
    while (index("0123456789", substr(v, 1, 1)) && v != "") { t = t substr(v, 1, 1); v = substr(v, 2) }
    if (length(t) > 3) print "@" substr(t, 1, length(t) - 3)
  }
}
BEGIN {
  split("unknown u install i hold h deinstall r purge p", x, " "); for (i = 1; i < 10; i += 2) WANT[x[i]] = x[i + 1]
  EFLAG["ok"] = " "; EFLAG["reinstreq"] = "R"
  split("not-installed n config-files c half-installed H unpacked U half-configured F triggers-awaited W triggers-pending t installed i", x, " ")
  for (i = 1; i < 16; i += 2) STATE[x[i]] = x[i + 1]
  for (i = 1; i < ARGC; i++) {
    k = ARGV[i]
    if (k == "--procs") { rec("files", "done"); procs(i + 1); break }
    if (k == "--rescan") { procs(i + 1); break }
    if (k == "--times") { times(i + 1); break }
    f = ARGV[++i]
    if (k == "gen" || k == "genx") {
      # The name first: a read error ends awk, the name then has no body.
      rec("gen.name", base(f))
      if (k == "gen") { v = slurp(f); if (ok) rec("gen.body", v) }
    }
    else if (k == "os") { v = slurp(f); if (ok) rec("os", v) }
    else if (k == "serveruid") { v = slurp(f); if (ok) rec("serveruid", substr(v, 1, 200)) }
    else if (k == "uid") uid(f)
    else if (k == "dpkg") dpkg(f)
    else if (k == "script") scan(f)
    else if (k == "bmini") bmini(f)
    else if (k == "mounts") mounts(f)
    else if (k == "fib") fib(f)
  }
  exit needip ? 3 : 0
}
`

// factsAwkVar assigns factsAwk to FACTS_AWK, quoted once for every node.
var factsAwkVar = setVar("FACTS_AWK", factsAwk)

// setVar renders an assignment with a quoted value.
func setVar(name, value string) string { return name + "=" + transport.QuoteArg(value) + "\n" }

// factsRun is what varies between two runs of the facts script on a node.
type factsRun struct {
	RunID string // names the probe; "" = no probe (the script reads no stdin)
	Tries int    // times the script looks for the others' probes, 1 s apart
	Dates bool   // render the generations' dates on the node (restore plans)
}

// factsScript builds the facts script for node. Every interpolated value
// is quoted. With a probe, the script waits on stdin for the cross-node
// phase (see Fleet.Verify).
func factsScript(r scriptRoots, arch inventory.Architecture, n inventory.Node, run factsRun) string {
	var b strings.Builder
	b.Grow(len(factsPrelude) + len(factsAwkVar) + len(factsBody) + len(aliveFn) + 1024)
	b.WriteString("TRIES=" + strconv.Itoa(max(1, run.Tries)) + "\n")
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
	dpkg := r.Dpkg
	if dpkg == "" {
		dpkg = dpkgStatus
	}
	b.WriteString(setVar("DPKG", dpkg))
	dates := ""
	if run.Dates {
		dates = "1"
	}
	b.WriteString(setVar("DATES", dates))
	b.WriteString(factsAwkVar)
	awk := r.Awk
	if awk == "" {
		awk = "awk"
	}
	b.WriteString(setVar("AWK", awk))
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
	if run.RunID != "" {
		probe = r.Store + "/temp/" + probeName(run.RunID, n.Name)
	}
	b.WriteString(setVar("PROBE", probe))
	b.WriteString(factsBody)
	return b.String()
}

// posixSh wraps a script so that a POSIX sh runs it whatever root's login
// shell is (SSH hands the command line to that shell, which may be csh or
// fish).
func posixSh(script string) string { return transport.Quote("sh", "-c", script) }
