#!/usr/bin/env bash
# Benchmark: prapush's memory while a node's restore script writes a flood of
# output. On a lab of its own, `prapush restore --generation latest --yes
# --no-post --allow-partial -l mail` runs twice under /usr/bin/time: once with
# the fake script's normal output (a few KB), once with FLOOD_BYTES (default
# 1 GiB) of rsync-like lines printed during one step (FLOOD_STEP). Prints wall
# time, peak RSS, CPU time and the size of the node log prapush kept, for both. The
# target is a flat RSS, at most 80 MB. Measured, never asserted.
# Needs root, Docker, /usr/bin/time and the lab images (built if missing).
set -euo pipefail
FLOOD_BYTES=${FLOOD_BYTES:-1073741824}
FLOOD_STEP=${FLOOD_STEP:-Restoring Cyrus spool files}
STEP_SECONDS=${STEP_SECONDS:-0.05}
cd "$(dirname "$0")/.."
# shellcheck source=bench/lablib.sh
. bench/lablib.sh prapush-bench-output

# run LABEL [KNOB=value...]: a fresh mail node, its knobs, one measured restore.
run() {
  local label=$1 dir=$work/$1 rc=0 res
  shift
  lab/lab.sh reset ok mail >/dev/null 2>&1
  lab/lab.sh knob mail "STEP_SECONDS=$STEP_SECONDS" "$@"
  /usr/bin/time -o "$work/$label.time" -f '%e %M %U %S' "$work/prapush" -i "$inv" restore --generation latest --yes --no-post \
    --allow-partial -l mail --report-dir "$dir" >"$work/$label.out" 2>&1 || rc=$?
  read -r wall rss usr sys < <(tail -1 "$work/$label.time") || true
  res=$(grep -oE '^mail +stage [0-9]+ +[a-z]+' "$work/$label.out" | awk '{ print $4 }' | tail -1)
  printf '%-7s %9.2f %9.1f MB %9.2f %12s %9s %s\n' "$label" "$wall" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
    "$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')" \
    "$(stat -c %s "$dir/logs/mail.log" 2>/dev/null || echo -)" "${res:-?}" "exit $rc"
  echo "$rss" >"$work/$label.rss"
}

echo "restore output: node mail, STEP_SECONDS=$STEP_SECONDS, flood $FLOOD_BYTES bytes during \"$FLOOD_STEP\""
printf '%-7s %9s %12s %9s %12s %9s\n' "" "wall (s)" "peak RSS" "CPU (s)" "log (bytes)" "restore"
run small
run flood "FLOOD_BYTES=$FLOOD_BYTES" "FLOOD_STEP=$FLOOD_STEP"
awk -v a="$(cat "$work/small.rss")" -v b="$(cat "$work/flood.rss")" 'BEGIN {
  printf "peak RSS %.1f MB with the flood, %.1f MB without: %+.1f MB (target flat, <= 80 MB)\n", b / 1024, a / 1024, (b - a) / 1024
}'
