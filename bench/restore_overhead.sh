#!/usr/bin/env bash
# Benchmark: what prapush adds to the restore itself. On a lab of its own (3
# container nodes, the fake bm-pra-restore.py with STEP_SECONDS per step), each
# round:
#   1. runs the script directly in every node (docker exec, the menu answer on
#      stdin, cd /usr/share/bm-node && python -u bm-pra-restore.py) and times it,
#      minus the cost of an empty `docker exec`;
#   2. runs `prapush restore --generation latest --yes --no-post` on the lab
#      (data nodes in parallel, then the core) and reads each node's restore
#      time (started_at..ended_at) from report.json.
# Prints both per node, their difference, and the whole run against the direct
# critical path (stage 1's longest node + the core). Measured, never asserted.
# Needs root, Docker and the lab images (built if missing, from the cache).
set -euo pipefail
ROUNDS=${ROUNDS:-3}
STEP_SECONDS=${STEP_SECONDS:-0.2}
cd "$(dirname "$0")/.."
# shellcheck source=bench/lablib.sh
. bench/lablib.sh prapush-bench-restore
nodes=(core mail files)

cid() { docker ps -q --filter "label=com.docker.compose.project=$LAB_PROJECT" --filter "label=com.docker.compose.service=$1"; }
now() { echo "$EPOCHREALTIME"; }
secs() { date -d "$1" +%s.%N; }
# node_times REPORT prints "node stage started ended" per node (report.json is
# indented by Go: a node's own keys at 6 spaces, its restore's at 8).
node_times() {
  awk '/^  "architecture_checks"/ { exit }
    /^      "name": / { gsub(/[",]/, "", $2); n = $2 }
    /^      "stage": / { gsub(/,/, "", $2); st[n] = $2 }
    /^        "started_at": / { gsub(/[",]/, "", $2); s[n] = $2 }
    /^        "ended_at": / { gsub(/[",]/, "", $2); e[n] = $2; print n, st[n], s[n], e[n] }' "$1"
}

# The menu line prapush picks for "latest" (the direct runs answer the same).
"$work/prapush" -i "$inv" restore --generation latest --dry-run --yes --report-dir "$work/dry" >/dev/null 2>&1 || true
index=$(grep -m1 -o '"menu_index": [0-9]*' "$work/dry/report.json" | grep -o '[0-9]*$') || { echo "dry run: no menu index" >&2; exit 1; }

echo "restore overhead: 3 lab nodes, STEP_SECONDS=$STEP_SECONDS, menu answer $index, $ROUNDS round(s)"
for r in $(seq 1 "$ROUNDS"); do
  lab/lab.sh reset ok >/dev/null 2>&1
  for n in "${nodes[@]}"; do lab/lab.sh knob "$n" "STEP_SECONDS=$STEP_SECONDS"; done
  declare -A direct=()
  for n in "${nodes[@]}"; do
    c=$(cid "$n")
    t0=$(now); docker exec "$c" true; t1=$(now)
    out=$(printf '%s\n' "$index" | docker exec -i "$c" sh -c 'cd /usr/share/bm-node && python -u bm-pra-restore.py' 2>&1) || { echo "direct run on $n failed:" >&2; tail -5 <<<"$out" >&2; exit 1; }
    t2=$(now)
    [[ $out == *"Starting BlueMind services OK"* ]] || { echo "direct run on $n did not finish:" >&2; tail -c 300 <<<"$out" >&2; exit 1; }
    direct[$n]=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.3f", (c - b) - (b - a) }')
  done
  # The same nodes, freshly installed again, through prapush.
  lab/lab.sh reset ok >/dev/null 2>&1
  for n in "${nodes[@]}"; do lab/lab.sh knob "$n" "STEP_SECONDS=$STEP_SECONDS"; done
  t0=$(now)
  rc=0; "$work/prapush" -i "$inv" restore --generation latest --yes --no-post --report-dir "$work/r$r" >"$work/r$r.out" 2>&1 || rc=$?
  wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
  verdict=$(sed -n 's/^  "verdict": "\(.*\)",/\1/p' "$work/r$r/report.json")
  echo
  echo "round $r: prapush exit $rc, verdict $verdict"
  [ "$rc" = 0 ] || grep -E '^(post +)?[a-z.]* *FAIL' "$work/r$r.out" | sed 's/^/  why: /' || true
  printf '  %-6s %5s %10s %12s %12s\n' node stage "direct (s)" "prapush (s)" "overhead (s)"
  stage1=0; stage2=0
  while read -r n st s e; do
    p=$(awk -v a="$(secs "$s")" -v b="$(secs "$e")" 'BEGIN { printf "%.3f", b - a }')
    printf '  %-6s %5s %10.3f %12.3f %12.3f\n' "$n" "$st" "${direct[$n]}" "$p" "$(awk -v p="$p" -v d="${direct[$n]}" 'BEGIN { print p - d }')"
    if [ "$st" = 2 ]; then stage2=${direct[$n]}; else stage1=$(awk -v a="$stage1" -v b="${direct[$n]}" 'BEGIN { print (b > a) ? b : a }'); fi
  done < <(node_times "$work/r$r/report.json")
  awk -v w="$wall" -v a="$stage1" -v b="$stage2" -v n="${#nodes[@]}" 'BEGIN {
    c = a + b
    printf "  whole run: prapush %.2f s (connect, checks, plan, restore, post checks) vs direct critical path %.2f s (stage 1 longest %.2f + core %.2f)\n", w, c, a, b
    printf "  overhead %.2f s in all, %.2f s per node (target <= 1 s per node)\n", w - c, (w - c) / n
  }'
done
