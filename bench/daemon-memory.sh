#!/usr/bin/env bash
# The daemon's memory while VEs touch ever new endpoints, and its restart time, for one or more
# builds side by side: a VE per round makes N connects, each to an endpoint of its own (no
# route: each fails at once and is recorded toward its address, a new variable), ROUNDS
# rounds; after each, the daemon's VmRSS. Then the daemon is stopped and started again by a
# `jcs run`: how long that run took (the daemon reads its journal's open segment), and whether
# it succeeded.
#   bench/daemon-memory.sh [N] [ROUNDS] [JCS_BIN ...]   (default 100000 6, this tree's release
#                                                        build; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-100000}
rounds=${2:-6}
shift $(( $# >= 2 ? 2 : $# ))
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  (cd "$repo" && cargo build --release --quiet)
  bins=("$repo/target/release/jcs")
fi
command -v gcc >/dev/null || { echo "daemon-memory.sh: gcc is missing (scripts/install-deps.sh --all)" >&2; exit 1; }
work=$(mktemp -d /tmp/jcs-bench-memory.XXXXXX)
stop() {
  local d
  d=$(cat "$1/daemon.pid" 2>/dev/null) || return 0
  kill "$d" 2>/dev/null || return 0
  while [ -d "/proc/$d" ]; do sleep 0.1; done
}
cleanup() {
  for s in "$work"/store-*; do stop "$s"; done
  rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -static -o "$work/connect-spray" "$here/src/connect-spray.c"
for i in "${!bins[@]}"; do
  jcs=${bins[$i]}
  export JCS_HOME="$work/store-$i" JCS_RUN_DIR="$work/run-$i"
  "$jcs" template create bb --busybox >/dev/null
  "$jcs" app create bench --template bb --persist /data >/dev/null
  cp "$work/connect-spray" "$JCS_HOME/persist/bench/data/"
  "$jcs" run bench -- true
  d=$(cat "$JCS_HOME/daemon.pid")
  rss=("$(awk '/VmRSS/ {print $2}' "/proc/$d/status")")
  for r in $(seq "$rounds"); do
    "$jcs" run bench -- /data/connect-spray "$n" $(( (r - 1) * n )) >/dev/null 2>&1
    sleep 1
    rss+=("$(awk '/VmRSS/ {print $2}' "/proc/$d/status")")
  done
  stop "$JCS_HOME"
  seg=$(du -b "$JCS_HOME"/journal/*.seg | awk '{s += $1} END {print s}')
  t0=$(date +%s.%N)
  if "$jcs" run bench -- true 2>"$work/restart.err"; then ok=yes; else ok="no: $(tail -1 "$work/restart.err")"; fi
  t1=$(date +%s.%N)
  echo "| ${jcs} | $(printf '%s ' "${rss[@]}" | sed 's/ $//; s/ / → /g') | $seg | $(echo "$t1 - $t0" | bc) | $ok |"
  stop "$JCS_HOME"
done | { echo "N = $n connects per round, $rounds rounds"; echo; echo "| build | daemon VmRSS KiB, at start then after each round | journal bytes | jcs run after a restart, s | succeeded |"; echo "|---|---|---|---|---|"; cat; }
