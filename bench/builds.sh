#!/usr/bin/env bash
# Two builds of jcs side by side in one run (a refactoring must not cost anything):
#   VE start   `jcs run APP -- /usr/bin/true`, warm and cold (250 ms idle before each run),
#              hyperfine, the builds interleaved per mode;
#   per event  the syscall-loop inside a recorded VE: write(1 B) to the VE's tmpfs (one
#              transaction per call), open+close of a persistent file (two), getppid (counted,
#              never recorded), and getppid of a host process while the build's monitor is
#              loaded; each build with its own store and daemon, alternating per round.
#
#   bench/builds.sh OLD_JCS NEW_JCS [--runs N] [--n N] [--rounds R] [--out FILE]
#
# Prints a Markdown table with new/old ratios and writes it to --out (default
# bench/results/builds-DATE.md). Needs root, hyperfine, gcc (scripts/install-deps.sh --all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=60 n=200000 rounds=3
out="$here/results/builds-$(date -u +%Y%m%d).md"
[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
old=$(realpath "$1") new=$(realpath "$2"); shift 2
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "builds.sh: needs root" >&2; exit 1; }
for t in hyperfine gcc python3; do
  command -v "$t" >/dev/null || { echo "builds.sh: $t is missing (scripts/install-deps.sh --all)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/jcs-bench-builds.XXXXXX)
# Each build's daemons meet in a run directory of their own: no other daemon of the host, and
# not the other build's (which would not take the store — their build ids differ — but would
# leave which one holds the host's lock to the order they start in).
run_dir() { echo "$work/$1/run"; }
daemon_stop() { # store
  if [ -f "$1/daemon.pid" ]; then
    local p; p=$(cat "$1/daemon.pid"); kill "$p" 2>/dev/null || true
    while [ -d "/proc/$p" ]; do sleep 0.05; done
    rm -f "$1/daemon.pid"
  fi
}
cleanup() { daemon_stop "$work/old"; daemon_stop "$work/new"; rm -rf "$work"; }
trap cleanup EXIT
gcc -O2 -static -o "$work/syscall-loop" "$here/src/syscall-loop.c"
for b in old new; do
  bin=${!b}
  "$bin" --home "$work/$b" template create bb --busybox >/dev/null
  "$bin" --home "$work/$b" app create bench --template bb --persist /data >/dev/null
  cp "$work/syscall-loop" "$work/$b/persist/bench/data/"
  JCS_RUN_DIR=$(run_dir "$b") "$bin" --home "$work/$b" run bench -- /usr/bin/true
done
res="$work/results"; : > "$res"
json="$work/json"; mkdir -p "$json"
for mode in warm cold; do
  extra=(); [ "$mode" = cold ] && extra=(--prepare 'sleep 0.25')
  for b in old new; do
    echo "== VE start, $mode, $b" >&2
    JCS_RUN_DIR=$(run_dir "$b") \
      hyperfine -N --warmup 5 --runs "$runs" "${extra[@]}" --export-json "$json/$mode-$b.json" \
      "${!b} --home $work/$b run bench -- /usr/bin/true" >/dev/null
  done
done
for r in $(seq "$rounds"); do
  for b in old new; do
    echo "== per event, round $r/$rounds, $b" >&2
    bin=${!b}; home="$work/$b"; export JCS_RUN_DIR; JCS_RUN_DIR=$(run_dir "$b")
    for l in write openclose getppid; do
      case $l in write) f=/dev/shm/f ;; openclose) f=/data/f ;; *) f=- ;; esac
      echo "$b $l $("$bin" --home "$home" run bench -- /data/syscall-loop $l "$n" $f)" >> "$res"
    done
    # The build's monitor stays loaded (its daemon runs): a host process's getppid.
    echo "$b host-getppid $("$work/syscall-loop" getppid "$n" -)" >> "$res"
    daemon_stop "$home"
  done
done
mkdir -p "$(dirname "$out")"
python3 - "$json" "$res" "$runs" "$n" "$rounds" "$old" "$new" > "$out" <<'PY'
import json, os, platform, statistics, sys, datetime
d, res, runs, n, rounds, old, new = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Two builds, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
      f"kernel {platform.release()}, {os.cpu_count()} CPUs ({cpu})\n\nold: {old}\nnew: {new}\n")
print(f"VE start: {runs} runs per cell; per event: {n} iterations, medians of {rounds} rounds\n")
print("| measure | old | new | new/old |")
print("|---|---|---|---|")
for mode in ["warm", "cold"]:
    m = {b: statistics.median(json.load(open(f"{d}/{mode}-{b}.json"))["results"][0]["times"]) * 1e3 for b in ["old", "new"]}
    print(f"| VE start, {mode} (ms) | {m['old']:.2f} | {m['new']:.2f} | {m['new'] / m['old']:.2f} |")
rows = {}
for line in open(res):
    b, l, v = line.split()
    rows.setdefault((b, l), []).append(float(v))
names = {"write": "write(1 B) in a recorded VE (ns)", "openclose": "open+close in a recorded VE (ns)",
         "getppid": "getppid in a recorded VE (ns)", "host-getppid": "getppid of a host process, monitor loaded (ns)"}
for l, what in names.items():
    o, nn = statistics.median(rows[("old", l)]), statistics.median(rows[("new", l)])
    print(f"| {what} | {o:.0f} | {nn:.0f} | {nn / o:.2f} |")
PY
cat "$out"
