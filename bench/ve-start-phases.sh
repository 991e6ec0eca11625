#!/usr/bin/env bash
# Where the time of `jcs run APP -- true` goes: runs it N times with JCS_TIMING=1 and prints
# the median of each phase (parent-side phases, the VE init's mount steps, and the process
# timeline), with a pause between runs like the "cold" column of ve-start.sh.
#   bench/ve-start-phases.sh [N]   (default 50; needs root and a release build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-50}
jcs="${JCS_BIN:-$repo/target/release/jcs}"
[ -x "$jcs" ] || (cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-phases.XXXXXX)
trap '[ -f "$work/store/daemon.pid" ] && kill "$(cat "$work/store/daemon.pid")" 2>/dev/null; sleep 0.2; rm -rf "$work"' EXIT
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create bench --template bb >/dev/null
for _ in $(seq "$n"); do
  JCS_TIMING=1 "$jcs" run bench -- /usr/bin/true 2>>"$work/log"
  sleep 0.25
done
python3 - "$work/log" <<'PY'
import re, statistics, sys
phases, steps, marks = {}, {}, {}
for line in open(sys.argv[1]):
    if " phases: " in line and "start phases" not in line:
        for name, us in re.findall(r"([a-z +]+?) (\d+)us", line.split("phases: ", 1)[1]):
            phases.setdefault(name.strip(), []).append(int(us))
    elif "init steps:" in line:
        for item in line.split("steps: ", 1)[1].strip().rstrip(",").split(", "):
            name, us = item.rsplit(" ", 1)
            steps.setdefault(name, []).append(int(us.rstrip("us")))
    elif "timeline" in line:
        prev = 0
        for name, us in re.findall(r"([a-z+]+)@(\d+)us", line):
            marks.setdefault(name, []).append(int(us) - prev); prev = int(us)
med = lambda v: statistics.median(v) / 1000
print("| parent phase | median ms |\n|---|---|")
for k, v in phases.items(): print(f"| {k} | {med(v):.3f} |")
print("\n| VE init step (from the parent's clone to the app's exec) | median ms |\n|---|---|")
for k, v in steps.items(): print(f"| {k} | {med(v):.3f} |")
print("\n| process timeline segment (from the previous mark) | median ms |\n|---|---|")
for k, v in marks.items(): print(f"| {k} | {med(v):.3f} |")
PY
