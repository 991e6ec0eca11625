#!/usr/bin/env bash
# `jcs track` latency as the journal grows, read through the segment indexes (the default)
# and whole (JCS_TRACK_SCAN=full), on synthetic journals of many VEs that keep mostly to
# themselves (crates/jcs/examples/sparse_journal.rs: 2,000 transactions per VE, 1 MiB
# segments). The two answers are compared byte for byte. Needs root: a daemon is started once
# per store to index its sealed segments (and fill the catalog's dictionary), then stopped.
#   bench/track-scale.sh [EVENTS...]   (default 100000 1000000 10000000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(100000 1000000 10000000)
(cd "$repo" && cargo build --release --quiet --bin jcs --example sparse_journal)
jcs="$repo/target/release/jcs"
work=$(mktemp -d /tmp/jcs-bench-track.XXXXXX)
daemon=""
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; sleep 0.2; rm -rf "$work"' EXIT
# Median wall time in ms of 3 runs of a command (its output to $work/out).
ms() {
  local t=()
  for _ in 1 2 3; do
    local s e
    s=$(date +%s%N); "$@" > "$work/out"; e=$(date +%s%N)
    t+=($(( (e - s) / 1000000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p
}
echo "| transactions | segments | question | indexed ms | full read ms | ratio | same answer |"
echo "|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  export JCS_HOME="$work/s$n" JCS_RUN_DIR="$work/s$n/run"
  "$repo/target/release/examples/sparse_journal" "$n" "$JCS_HOME" 2>/dev/null
  # Index the sealed segments: a daemon does when it starts (then it is stopped).
  "$jcs" daemon > "$work/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 600); do [ -S "$JCS_HOME/daemon.sock" ] && break; sleep 0.1; done
  kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=""
  segs=$(ls "$JCS_HOME/journal" | grep -c '\.seg$')
  ves=$(( (n + 1999) / 2000 ))
  mid=$(( ves / 2 > 0 ? ves / 2 : 1 ))
  hundred=$(( ves >= 100 ? 100 : 1 ))
  for q in "back file:/data/v$mid/f3" "forward endpoint:tcp/10.0.$(( mid / 256 )).$(( mid % 256 )):443" "back file:/data/v$hundred/f1"; do
    # shellcheck disable=SC2086
    a=$(ms "$jcs" track $q --json); cp "$work/out" "$work/a"
    # shellcheck disable=SC2086
    b=$(JCS_TRACK_SCAN=full ms "$jcs" track $q --json); cp "$work/out" "$work/b"
    same=$(cmp -s "$work/a" "$work/b" && echo yes || echo NO)
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f×", (a > 0 ? b / a : 0) }')
    echo "| $n | $segs | track $q | $a | $b | $ratio | $same |"
  done
done
