# Sourced by the restore benchmarks: a lab of their own (own compose project,
# subnet, state dir and store), a prapush binary built for it, and a cleanup
# on exit. Sets: work (temporary dir, prefix $1), inv (the lab's inventory).
# Never touches the developer's lab/.state.
export LAB_PROJECT=${BENCH_LAB_PROJECT:-prapush-bench} LAB_SUBNET=${BENCH_LAB_SUBNET:-172.29.91.0/24}
work=$(mktemp -d "/tmp/$1.XXXXXX")
export LAB_STATE=$work/lab
for n in CORE MAIL FILES; do export "LAB_${n}_STORE=$LAB_STATE/backup"; done
cleanup() {
  lab/lab.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/prapush" ./cmd/prapush
lab/lab.sh images bullseye >/dev/null 2>&1 || { echo "lab images: lab/lab.sh images bullseye failed" >&2; exit 1; }
lab/lab.sh up ok >/dev/null 2>&1 || { echo "lab up failed" >&2; exit 1; }
inv=$LAB_STATE/inventory.toml
