#!/usr/bin/env bash
# Recording cost per event and loss under load: a VE copies N bytes between two files of
# persistent storage one byte per call (2 N recorded system calls: a read and a write, each a
# transaction), with the monitor on and with JCS_MONITOR=off, in the same run. Reports the
# added time per recorded event, events per second, and the records the kernel lost; then P
# VEs at once. (Until 2026-12-04 it copied /dev/zero into the VE's dirties: both sides are no
# longer transactions — a data-less device is classified inside, a write into the dirties is
# an integrity record.)
#   bench/monitor.sh [N]    (default 500000; needs root)
#   JCS_BIN=PATH bench/monitor.sh …   that jcs binary instead of this tree's release build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-500000}
jcs="${JCS_BIN:-$repo/target/release/jcs}"
[ -n "${JCS_BIN:-}" ] || (cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-monitor.XXXXXX)
trap '[ -f "$work/store/daemon.pid" ] && kill "$(cat "$work/store/daemon.pid")" 2>/dev/null; sleep 0.2; rm -rf "$work"' EXIT
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create bench --template bb --persist /data >/dev/null
head -c "$n" /dev/urandom > "$JCS_HOME/persist/bench/data/src"
# Each VE its own output file (VEs of one app share its persistent storage).
script="o=\$(mktemp /data/out.XXXXXX); dd if=/data/src of=\$o bs=1 count=$n 2>/dev/null; rm \$o"
"$jcs" run bench -- /bin/sh -c true  # start the daemon
t() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
off=(); on=()
for _ in 1 2 3; do
  off+=("$(JCS_MONITOR=off t "$jcs" run bench -- /bin/sh -c "$script")")
  on+=("$(t "$jcs" run bench -- /bin/sh -c "$script")")
done
stats=$("$jcs" stats --json)
python3 - "$n" "${off[*]}" "${on[*]}" "$stats" <<'PY'
import json, statistics, sys
n = int(sys.argv[1]); off = sorted(map(int, sys.argv[2].split())); on = sorted(map(int, sys.argv[3].split()))
st = json.loads(sys.argv[4])
ves = [v for v in st["ves"] if v["by_op"].get("write", 0) >= n]
events = 2 * n
mo, mn = statistics.median(off), statistics.median(on)
lost = sum(v["records_lost"] for v in ves)
recorded = sum(v["by_op"].get("read", 0) + v["by_op"].get("write", 0) for v in ves) / max(len(ves), 1)
print(f"{n} one-byte copies ({events} recorded system calls per run), medians of 3 runs\n")
print("| | wall ms | per recorded event | events/s |")
print("|---|---|---|---|")
print(f"| JCS_MONITOR=off | {mo/1000:.0f} | — | {events/(mo/1e6):,.0f} |")
print(f"| recording | {mn/1000:.0f} | +{(mn-mo)*1000/events:.0f} ns | {events/(mn/1e6):,.0f} |")
print(f"\nrecorded read+write transactions per run: {recorded:,.0f} of {events:,}; records lost: {lost}; "
      f"journal {st['journal_bytes_per_transaction']:.1f} bytes per transaction")
PY
# Where loss starts: P VEs copy at once (the machine's cores shared by the producers and the
# daemon); events per second into the journal and records lost, per P.
echo
echo "| VEs at once | recorded events/s (all VEs) | records lost | lost % |"
echo "|---|---|---|---|"
for p in 1 2 4 8; do
  before=$("$jcs" stats --json)
  s=$(date +%s%N)
  pids=()
  for _ in $(seq "$p"); do "$jcs" run bench -- /bin/sh -c "$script" >/dev/null & pids+=($!); done
  for q in "${pids[@]}"; do wait "$q" || true; done
  e=$(date +%s%N)
  after=$("$jcs" stats --json)
  python3 - "$p" "$n" "$s" "$e" "$before" "$after" <<'PY'
import json, sys
p, n, s, e = map(int, sys.argv[1:5])
b, a = json.loads(sys.argv[5]), json.loads(sys.argv[6])
old = {v["ve"] for v in b["ves"]}
new = [v for v in a["ves"] if v["ve"] not in old]
ev = sum(v["by_op"].get("read", 0) + v["by_op"].get("write", 0) for v in new)
lost = sum(v["records_lost"] for v in new)
print(f"| {p} | {ev / ((e - s) / 1e9):,.0f} | {lost:,} | {100 * lost / max(ev + lost, 1):.2f} |")
PY
done
