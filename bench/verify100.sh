#!/usr/bin/env bash
# Benchmark: `prapush verify` against N local OpenSSH sshd nodes (127.0.0.2..)
# that all see a realistic backup tree at /var/backups/bluemind, side by side
# with the floor (bench/floor: dial all nodes in parallel, one command each).
# Prints wall time, peak RSS and CPU time of both, and the ratios.
# Needs root (sshd per node inside a private mount namespace, so that the
# host's /root and /var/backups are untouched).
set -euo pipefail
N=${N:-100}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/prapush-bench.XXXXXX)
# Killing the namespace's first process (its PID 1) kills every node in it;
# do not rely on --kill-child alone (parent-death signals are not delivered
# on every kernel, e.g. gVisor).
cleanup() {
  local ns
  ns=$(cat "$work/ns.pid" 2>/dev/null) || true
  if [ -n "$ns" ]; then pkill -KILL -P "$ns" 2>/dev/null || true; kill "$ns" 2>/dev/null || true; fi
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/prapush" ./cmd/prapush
go build -o "$work/floor" ./bench/floor
go run ./lab/cmd/labgen -out "$work/store" -preset ok >/dev/null

ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
cp "$work/client_key.pub" "$work/authorized_keys"
: > "$work/known_hosts"
addrs=()
{
  printf '[architecture]\nname = "bench"\nexternal_url = "mail.lab.example"\nbluemind_version = "4.8.2"\n\n'
  printf '[ssh]\nidentity_files = ["%s"]\nknown_hosts = ["%s"]\nssh_config = ""\nport = 2222\n\n' "$work/client_key" "$work/known_hosts"
  for i in $(seq 1 "$N"); do
    ip=127.0.$(( (i + 1) / 250 )).$(( (i + 1) % 250 + 2 ))
    addrs+=("$ip:2222")
    printf '[[nodes]]\nname = "n%03d"\nip = "%s"\n' "$i" "$ip"
    [ "$i" = 1 ] && printf 'core = true\n'
    printf '\n'
    echo "[$ip]:2222 $(cut -d' ' -f1,2 "$work/host_key.pub")" >> "$work/known_hosts"
  done
} > "$work/inventory.toml"
printf '%s\n' "${addrs[@]}" > "$work/addrs"

cat > "$work/sshd_config" <<CFG
Port 2222
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
MaxStartups 200
LogLevel ERROR
CFG

# One private mount namespace for every node: a tmpfs over /root (no pyenv
# .bashrc) and the generated store bound on /var/backups/bluemind; and a
# PID namespace with its own /proc, so that the nodes' process scans see
# the nodes' processes, not the workstation's.
cat > "$work/ns.sh" <<NS
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /root
mount -t tmpfs tmpfs /var/backups 2>/dev/null || { mkdir -p /var/backups; mount -t tmpfs tmpfs /var/backups; }
mkdir -p /var/backups/bluemind /run/sshd
mount --bind $work/store /var/backups/bluemind
# sshd -D stays in the foreground: every node is a child of this shell, in
# this PID namespace, and dies with it (--kill-child), whatever happens to
# the benchmark.
while read -r a; do
  /usr/sbin/sshd -D -f $work/sshd_config -o ListenAddress=\$a &
done < $work/addrs
for a in \$(cat $work/addrs); do
  for _ in \$(seq 1 50); do (exec 3<>/dev/tcp/\${a%:*}/2222) 2>/dev/null && break; sleep 0.1; done
done
echo ready > $work/ready
wait
NS
unshare --mount --pid --fork --kill-child --mount-proc --propagation private bash "$work/ns.sh" & echo $! > "$work/ns.pid"
for _ in $(seq 1 100); do [ -f "$work/ready" ] && break; sleep 0.1; done
[ -f "$work/ready" ] || { echo "sshd nodes did not start" >&2; exit 1; }

# busy: CPU seconds every process of the machine spent (/proc/stat), the
# nodes' sshd and commands included: both runs are CPU-bound on the cores
# the nodes share with the client.
busy() { local _ u n s i w x y z; read -r _ u n s i w x y z _ < /proc/stat; echo $((u + n + s + x + y + z)); }
measure() { # label, command...
  local out b0 b1
  b0=$(busy)
  out=$( { /usr/bin/time -f '%e %M %U %S' "${@:2}" >/dev/null 2>"$work/err"; } 2>&1; tail -1 "$work/err")
  b1=$(busy)
  echo "$1 $out $(( (b1 - b0) * 1000 / $(getconf CLK_TCK) ))"
}
addrlist=$(paste -sd, "$work/addrs")
echo "nodes: $N, rounds: $ROUNDS (best of)"
best() { sort -n -k2 | head -1; }
for r in $(seq 1 "$ROUNDS"); do
  measure floor "$work/floor" -key "$work/client_key" -known-hosts "$work/known_hosts" -addrs "$addrlist" -cmd 'id -u'
done | best > "$work/floor.res"
# The least the checks need on a node, run by the floor program instead of
# id -u: one awk reading dpkg's database and every process's comm (for
# bluemind.installed/version and restore.idle/backup.idle), df (disk.space),
# and a probe created then removed in the store (backup.writable). No
# cross-node phase, no generation file, nothing of prapush: a lower bound.
cat > "$work/minimum.sh" <<'MIN'
LC_ALL=C; export LC_ALL
awk 'BEGIN { RS = ""; f = "/var/lib/dpkg/status"; while ((getline p < f) > 0) if (index(p, "Package: bm-")) n++; close(f)
  RS = "\n"; for (i = 1; i < ARGC; i++) { f = ARGV[i] "/comm"; if ((getline c < f) > 0) n++; close(f) } }' /proc/[0-9]*
df -P -m /var/spool /var/lib/postgresql /var/spool/bm-elasticsearch /var/spool/bm-filehosting /var/spool/bm-hsm >/dev/null 2>&1
p=/var/backups/bluemind/temp/.bench-$$; : > "$p" && rm -f "$p"
MIN
for r in $(seq 1 "$ROUNDS"); do
  measure minimum "$work/floor" -key "$work/client_key" -known-hosts "$work/known_hosts" -addrs "$addrlist" -cmd "sh $work/minimum.sh"
done | best > "$work/minimum.res"
for r in $(seq 1 "$ROUNDS"); do
  measure prapush "$work/prapush" -i "$work/inventory.toml" verify --report-dir "$work/report-$r"
done | best > "$work/prapush.res"
read -r _ fw fr fu fs fb < "$work/floor.res"
read -r _ mw mr mu ms mb < "$work/minimum.res"
read -r _ pw pr pu ps pb < "$work/prapush.res"
awk -v fw="$fw" -v fr="$fr" -v fu="$fu" -v fs="$fs" -v fb="$fb" -v mw="$mw" -v mb="$mb" -v pw="$pw" -v pr="$pr" -v pu="$pu" -v ps="$ps" -v pb="$pb" 'BEGIN {
  printf "%-8s %10s %12s %10s %16s\n", "", "wall (s)", "peak RSS", "CPU (s)", "machine CPU (s)"
  printf "%-8s %10.2f %9.1f MB %10.2f %16.2f\n", "floor", fw, fr/1024, fu+fs, fb/1000
  printf "%-8s %10.2f %12s %10s %16.2f   (the checks'"'"' least work on each node, by the floor program)\n", "minimum", mw, "", "", mb/1000
  printf "%-8s %10.2f %9.1f MB %10.2f %16.2f\n", "prapush", pw, pr/1024, pu+ps, pb/1000
  fc = fu+fs; if (fc < 0.01) fc = 0.01
  printf "ratio    wall %.2fx (target <= 1.3x; the minimum alone: %.2fx)   RSS %.1f MB (target <= 40 MB)   CPU %.2fx (prapush alone: %.2f s)\n", pw/fw, mw/fw, pr/1024, (pu+ps)/fc, pu+ps
}'
grep -h '"verdict"' "$work"/report-1/report.json | head -1 || true
