package tasks

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/prapush/prapush/transport"
)

// A run directory on a node (spec restore item 6) is the lock and the
// state of one node's restore:
//
//	pid, pgid   the detached wrapper (session and process group leader)
//	starttime   field 22 of /proc/<pid>/stat, boot_id: a recycled pid or a
//	            reboot never makes a dead run look alive
//	input       FIFO, the script's stdin, held open read-write by the
//	            wrapper so that the script never reads EOF (EOF at the menu
//	            loops forever, domain §3.3)
//	ctl         FIFO the wrapper waits on: "go" starts the script, anything
//	            else cancels the run; so every node is locked before the
//	            first change, and a stage not started yet stays locked
//	output      the script's stdout and stderr
//	started     written when the script starts
//	exit        the exit status ("<rc>", "killed", "cancelled"), written
//	            atomically
//	plan        the node's plan (JSON), for attach and status

// runDir returns the run directory of runID under root.
func runDir(root, runID string) string { return root + "/" + runID }

// wrapper is the detached process: sh -c wrapper prapush-run RUN SCRIPT PY.
// It is started in a new session (setsid or a systemd unit), so that it
// survives the SSH connection and the workstation, and kill -TERM -PGID stops
// it and the script with every child.
const wrapper = `RUN=$1 SCRIPT=$2 PY=$3
cd "$RUN" || exit 1
s=$(cat /proc/$$/stat) || exit 1
r=${s##*) }
set -f
set -- $r
echo "$3" > pgid.tmp && mv pgid.tmp pgid
echo "${20}" > starttime.tmp && mv starttime.tmp starttime
cat /proc/sys/kernel/random/boot_id > bootid.tmp && mv bootid.tmp bootid
echo $$ > pid.tmp && mv pid.tmp pid
exec 3<>input
read -r go < ctl
if [ "$go" != go ]; then echo cancelled > exit.tmp; mv exit.tmp exit; exit 0; fi
date +%s > started
dir=${SCRIPT%/*}
[ -n "$dir" ] || dir=/
if cd "$dir"; then
  "$PY" -u "${SCRIPT##*/}" <&3 3<&- >>"$RUN/output" 2>&1
  rc=$?
else
  echo "prapush: cannot cd to $dir" >>"$RUN/output"
  rc=126
fi
echo "$rc" > "$RUN/exit.tmp" && mv "$RUN/exit.tmp" "$RUN/exit"
`

// claimCmd creates the node's run directory and starts the wrapper, which
// waits for "go". It refuses (record busy) when a live run or a restore
// process is on the node. Mutating.
// procs false skips the look for restore processes outside run directories
// (tests on a machine shared with other restores).
func claimCmd(runsRoot, runID string, np NodePlan, procs bool) Command {
	planJSON, _ := json.Marshal(np)
	var b strings.Builder
	b.WriteString(factsPrelude)
	b.WriteString(setVar("RUNS", runsRoot))
	b.WriteString(setVar("RUN", runDir(runsRoot, runID)))
	b.WriteString(setVar("SCRIPT", np.Script))
	b.WriteString(setVar("PY", np.Python))
	b.WriteString(setVar("PLAN", string(planJSON)))
	b.WriteString(setVar("WRAPPER", wrapper))
	b.WriteString(setVar("UNIT", "prapush-"+runID))
	if procs {
		b.WriteString("PROCS=1\n")
	}
	b.WriteString(aliveFn)
	b.WriteString(`umask 077
# Claiming again the run's own directory (the workstation died between the
# claim and recording it) finds it claimed.
if [ -d "$RUN" ]; then
  if alive "$RUN" && [ ! -e "$RUN/started" ]; then rec pid "$(cat "$RUN/pid")"; else rec err "$RUN exists and its wrapper is gone or started"; fi
  rec end ok; exit 0
fi
for d in "$RUNS"/*/; do
  [ -d "$d" ] || continue
  d=${d%/}
  if alive "$d"; then rec busy "a prapush run is live: $d"; rec end ok; exit 0; fi
done
if [ "$PROCS" = 1 ] && has ps; then
  p=$(ps -eo pid=,args= 2>/dev/null | awk -v m=@@prapush 'index($0, m) == 0 && index($0, "bm-pra-restore")' | head -n 3 | cut -c1-200)
  if [ -n "$p" ]; then rec busy "a restore is running: $p"; rec end ok; exit 0; fi
fi
mkdir -p "$RUNS" && chmod 700 "${RUNS%/*}" "$RUNS" || { rec err "cannot create $RUNS"; rec end ok; exit 0; }
if ! e=$(mkdir "$RUN" 2>&1); then rec err "$e"; rec end ok; exit 0; fi
cd "$RUN" || exit 1
mkfifo input ctl && printf '%s' "$PLAN" > plan && : > output || { rec err "cannot prepare $RUN"; rec end ok; exit 0; }
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && has systemd-run; then
  systemd-run --quiet --collect --unit="$UNIT" sh -c "$WRAPPER" prapush-run "$RUN" "$SCRIPT" "$PY" >/dev/null 2>&1 || rec err "systemd-run failed"
else
  setsid sh -c "$WRAPPER" prapush-run "$RUN" "$SCRIPT" "$PY" </dev/null >/dev/null 2>&1 &
fi
i=0
while [ ! -s pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
if [ -s pid ]; then rec pid "$(cat pid)"; else rec err "the run's wrapper did not start"; fi
rec end ok
`)
	return Command{Line: b.String(), Mutating: true, What: "claim the node (run directory, detached wrapper)"}
}

// aliveFn is shell: alive DIR succeeds when DIR's wrapper is alive: its pid
// runs with the recorded start time, in the recorded boot. Its body is a
// subshell, so that set -f and set -- do not leak into the caller. PROC
// (default /proc) lets the facts script's tests point it elsewhere.
const aliveFn = `alive() (
  P=${PROC:-/proc}
  [ -r "$1/pid" ] || exit 1
  ap=$(head -c 20 "$1/pid" 2>/dev/null | tr -dc 0-9)
  [ -n "$ap" ] && [ -r "$P/$ap/stat" ] || exit 1
  [ "$(cat "$1/bootid" 2>/dev/null)" = "$(cat "$P/sys/kernel/random/boot_id" 2>/dev/null)" ] || exit 1
  want=$(cat "$1/starttime" 2>/dev/null)
  [ -n "$want" ] || exit 1
  as=$(cat "$P/$ap/stat" 2>/dev/null) || exit 1
  as=${as##*) }
  set -f
  set -- $as
  [ "${20}" = "$want" ]
)
`

// runCtlCmd writes word ("go" or "cancel") into the run's ctl FIFO, only
// when its wrapper is alive (opening read-write never blocks). Mutating.
func runCtlCmd(runsRoot, runID, word string) Command {
	var b strings.Builder
	b.WriteString(factsPrelude)
	b.WriteString(setVar("RUN", runDir(runsRoot, runID)))
	b.WriteString(setVar("WORD", word))
	b.WriteString(aliveFn)
	b.WriteString(`if [ -e "$RUN/exit" ]; then rec exit "$(head -c 100 "$RUN/exit")"; rec end ok; exit 0; fi
if ! alive "$RUN"; then rec dead 1; rec end ok; exit 0; fi
printf '%s\n' "$WORD" 1<>"$RUN/ctl"
rec sent 1
rec end ok
`)
	return Command{Line: b.String(), Mutating: true, What: word + " the run"}
}

// answerCmd writes the menu answer "<index>\n" into the script's stdin,
// once: it records "already" instead when the run was answered before (its
// answered file, or output other than blanks after the prompt, which ends
// at byte promptEnd: the workstation died before it saved the answer).
// Mutating.
func answerCmd(runsRoot, runID string, index int, promptEnd int64) Command {
	var b strings.Builder
	b.WriteString(factsPrelude)
	b.WriteString(setVar("RUN", runDir(runsRoot, runID)))
	b.WriteString(aliveFn)
	b.WriteString(`if [ -e "$RUN/answered" ]; then rec already "$(head -c 20 "$RUN/answered")"; rec end ok; exit 0; fi
x=$(tail -c +` + strconv.FormatInt(promptEnd+1, 10) + ` "$RUN/output" 2>/dev/null | head -c 4096 | tr -d ' \t\r\n' | head -c 1)
if [ -n "$x" ]; then rec already output; rec end ok; exit 0; fi
if ! alive "$RUN"; then rec dead 1; rec end ok; exit 0; fi
printf '%s\n' ` + strconv.Itoa(index) + ` 1<>"$RUN/input"
echo ` + strconv.Itoa(index) + ` > "$RUN/answered"
rec sent 1
rec end ok
`)
	return Command{Line: b.String(), Mutating: true, What: "answer the menu"}
}

// verifyLogCmd reads the size of the run's output and the SHA-256 of its
// first n bytes: attach replays its local log only when it is exactly the
// node's output so far. Read-only.
func verifyLogCmd(runsRoot, runID string, n int64) Command {
	var b strings.Builder
	b.WriteString(factsPrelude)
	b.WriteString(setVar("RUN", runDir(runsRoot, runID)))
	b.WriteString(`[ -r "$RUN/output" ] || { rec missing 1; rec end ok; exit 0; }
rec size "$(wc -c < "$RUN/output" | tr -dc 0-9)"
has sha256sum && rec sum "$(head -c ` + strconv.FormatInt(n, 10) + ` "$RUN/output" | sha256sum | cut -c1-64)"
rec end ok
`)
	return Command{Line: b.String(), What: "compare the local log with the node's output"}
}

// headCmd streams the first n bytes of the run's output. Read-only.
func headCmd(runsRoot, runID string, n int64) Command {
	return Command{
		Line: "exec head -c " + strconv.FormatInt(n, 10) + " " + transport.QuoteArg(runDir(runsRoot, runID)+"/output"),
		What: "read the node's output",
	}
}

// killCmd stops the run's whole process group (TERM, then KILL after 3 s)
// and records "killed" as its exit status when the wrapper could not.
// "kill -SIG -PGID" without "--": dash's kill rejects "--". Mutating.
func killCmd(runsRoot, runID string) Command {
	var b strings.Builder
	b.WriteString(factsPrelude)
	b.WriteString(setVar("RUN", runDir(runsRoot, runID)))
	b.WriteString(aliveFn)
	b.WriteString(`if alive "$RUN"; then
  g=$(head -c 20 "$RUN/pgid" | tr -dc 0-9)
  if [ -n "$g" ] && [ "$g" -gt 1 ]; then
    kill -TERM "-$g" 2>/dev/null
    i=0
    while kill -0 "-$g" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "-$g" 2>/dev/null
  fi
fi
[ -e "$RUN/exit" ] || { echo killed > "$RUN/exit.tmp" && mv "$RUN/exit.tmp" "$RUN/exit"; }
rec exit "$(head -c 100 "$RUN/exit")"
rec end ok
`)
	return Command{Line: b.String(), Mutating: true, What: "stop the run's process group"}
}

// stopBlueMindCmd stops BlueMind on the node (safe order, domain §6).
// Mutating.
func stopBlueMindCmd() Command {
	return Command{Line: factsPrelude + "bmctl stop", Mutating: true, What: "stop BlueMind (bmctl stop)"}
}

// followCmd streams the run's output from byte offset (0-based) until the
// wrapper exits: GNU tail --pid reads what remains once it is gone.
func followCmd(runsRoot, runID string, offset int64, pid int) Command {
	out := runDir(runsRoot, runID) + "/output"
	return Command{
		Line: "exec tail -s 0.2 -c +" + strconv.FormatInt(offset+1, 10) + " --pid=" + strconv.Itoa(pid) + " -f " + transport.QuoteArg(out),
		What: "follow the script's output",
	}
}

// statusCmd reads the run directory: its wrapper's pid and liveness, the
// exit status, whether the script started, the output size and its tail
// (tailBytes, 0 = none). Read-only.
func statusCmd(runsRoot, runID string, tailBytes int) Command {
	var b strings.Builder
	b.WriteString(factsPrelude)
	b.WriteString(setVar("RUN", runDir(runsRoot, runID)))
	b.WriteString(aliveFn)
	b.WriteString(`if [ ! -d "$RUN" ]; then rec missing 1; rec end ok; exit 0; fi
[ -r "$RUN/pid" ] && rec pid "$(head -c 20 "$RUN/pid")"
alive "$RUN" && rec alive 1
[ -e "$RUN/started" ] && rec started "$(head -c 20 "$RUN/started")"
[ -e "$RUN/exit" ] && rec exit "$(head -c 100 "$RUN/exit")"
[ -r "$RUN/output" ] && rec size "$(wc -c < "$RUN/output" | tr -dc 0-9)"
`)
	if tailBytes > 0 {
		b.WriteString(`[ -r "$RUN/output" ] && { v=$(tail -c ` + strconv.Itoa(tailBytes) + ` "$RUN/output"; echo x); rec tail "${v%x}"; }
`)
	}
	b.WriteString("rec end ok\n")
	return Command{Line: b.String(), What: "read the run's state"}
}

// RunStatus is a run directory's state on one node.
type RunStatus struct {
	Missing bool   // no such run directory
	PID     int    // the wrapper's pid (0 unknown)
	Alive   bool   // the wrapper runs (same pid, start time and boot)
	Started bool   // the script was started ("go")
	Exit    string // "" while running; "<rc>", "killed" or "cancelled"
	Size    int64  // bytes of output
	Tail    []byte // the last bytes of output, when asked
	Done    bool   // the record stream was complete
}

// ExitCode returns the script's exit status, or -1 when it has none.
func (s RunStatus) ExitCode() int {
	n, err := strconv.Atoi(strings.TrimSpace(s.Exit))
	if err != nil {
		return -1
	}
	return n
}

func parseRunStatus(out string) (RunStatus, error) {
	recs, err := ParseRecords([]byte(out))
	var s RunStatus
	for _, r := range recs {
		v := strings.TrimSpace(string(r.Value))
		switch r.Key {
		case "missing":
			s.Missing = true
		case "pid":
			s.PID, _ = strconv.Atoi(v)
		case "alive":
			s.Alive = true
		case "started":
			s.Started = true
		case "exit":
			s.Exit = v
		case "size":
			s.Size, _ = strconv.ParseInt(v, 10, 64)
		case "tail":
			s.Tail = r.Value
		case "end":
			s.Done = true
		}
	}
	return s, err
}
