#!/usr/bin/env bash
# One monitor per host: what two stores with a VE each cost every other process of the host,
# served by one daemon (one set of BPF programs, as jcs does since 2026-12-04) or by a daemon
# each (two sets: each store's daemons meeting in a run directory of their own, as every store
# had before). A host process times a loop of getppid and of write(1 byte) to a tmpfs file:
#   none          no daemon
#   one-store     store A's daemon, with a VE that sleeps (the programs attached)
#   two-daemons   stores A and B, a sleeping VE each, a daemon each (JCS_RUN_DIR apart)
#   one-daemon    the same, both stores served by one daemon (one JCS_RUN_DIR)
# Each configuration runs once per round; the table shows medians over the rounds.
#   bench/stores.sh [N] [ROUNDS]   (default 1000000 5; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-1000000}
rounds=${2:-5}
jcs="$repo/target/release/jcs"
(cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-stores.XXXXXX)
sleepers=()
stop_all() {
  for p in "${sleepers[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${sleepers[@]}"; do wait "$p" 2>/dev/null || true; done
  sleepers=()
  for s in a b; do
    if [ -f "$work/$s/daemon.pid" ]; then
      local p; p=$(cat "$work/$s/daemon.pid"); kill "$p" 2>/dev/null || true
      while [ -d "/proc/$p" ]; do sleep 0.05; done
      rm -f "$work/$s/daemon.pid"
    fi
  done
}
cleanup() { stop_all; rm -rf "$work"; rm -f "${shm:-}"; }
trap cleanup EXIT
gcc -O2 -static -o "$work/syscall-loop" "$here/src/syscall-loop.c"
for s in a b; do
  JCS_HOME="$work/$s" "$jcs" template create bb --busybox >/dev/null
  JCS_HOME="$work/$s" "$jcs" app create bench --template bb --persist /data >/dev/null
done
shm="/dev/shm/jcs-stores-cost-$$"
out="$work/results"
: > "$out"
host() { "$work/syscall-loop" "$1" "$n" "$([ "$1" = write ] && echo "$shm" || echo "$work/f")"; }
measure() { for l in getppid write; do echo "$1 $l $(host $l)" >> "$out"; done; }
# A VE of store $1 that sleeps, its daemons meeting in run directory $2.
sleeper() {
  rm -f "$work/$1/persist/bench/data/up"
  JCS_HOME="$work/$1" JCS_RUN_DIR="$2" "$jcs" run bench -- /bin/sh -c 'touch /data/up; sleep 600' >/dev/null 2>&1 &
  sleepers+=($!)
  while [ ! -e "$work/$1/persist/bench/data/up" ]; do sleep 0.05; done
}
holders() { # processes holding BPF programs, of the run directories given
  local c=0
  for d in "$@"; do
    for p in /proc/[0-9]*; do
      { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qx "JCS_RUN_DIR=$d" || continue
      ls -l "$p/fd" 2>/dev/null | grep -q 'anon_inode:bpf-prog' && c=$((c + 1))
    done
  done
  echo "$c"
}
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  stop_all
  measure none
  sleeper a "$work/run-a"
  measure one-store
  sleeper b "$work/run-b"
  echo "holders two-daemons $(holders "$work/run-a" "$work/run-b")" >> "$out"
  measure two-daemons
  stop_all
  sleeper a "$work/run"
  sleeper b "$work/run"
  echo "holders one-daemon $(holders "$work/run")" >> "$out"
  measure one-daemon
  stop_all
done
python3 - "$out" "$n" "$rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
holders = {r[1]: r[2] for r in rows if r[0] == "holders"}
ns = {}
for c, l, v in (r for r in rows if r[0] != "holders"):
    ns.setdefault((c, l), []).append(float(v))
med = {k: statistics.median(v) for k, v in ns.items()}
print(f"host system calls while stores run VEs ({sys.argv[2]} calls per loop, median of {sys.argv[3]} rounds)")
print(f"{'configuration':<14} {'BPF holders':>11} {'getppid ns':>11} {'+ vs none':>10} {'write ns':>9} {'+ vs none':>10}")
for c in ["none", "one-store", "two-daemons", "one-daemon"]:
    g, w = med[(c, "getppid")], med[(c, "write")]
    print(f"{c:<14} {holders.get(c, '-'):>11} {g:>11.1f} {g - med[('none', 'getppid')]:>+10.1f} {w:>9.1f} {w - med[('none', 'write')]:>+10.1f}")
PY
