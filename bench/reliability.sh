#!/usr/bin/env bash
# Reliability under kills: a VE writes N lines to a persistent file (one write transaction
# each, a short pause every 100) while the recorder is killed with SIGKILL at a random moment (or, for a share of the
# trials, the `jcs run` itself is). After each trial, with W the lines the file holds (what
# the VE really wrote) and J the VE's write transactions in the journal:
#   complete   J >= W and no gap for the VE;
#   gap        J < W and the journal holds a gap for the VE (the loss is said);
#   silent     J < W and no gap (must be 0);
# and the journal verifies. Prints a Markdown table and writes it to --out.
#
#   bench/reliability.sh [--trials T] [--lines N] [--out FILE] [--jcs PATH]
#
# Needs root (scripts/install-deps.sh; a release build: cargo build --release -p jcs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
trials=100 lines=2000
out="$here/results/reliability-$(date -u +%Y%m%d).md"
jcs="$here/../target/release/jcs"
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) trials=$2; shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --jcs) jcs=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "reliability.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "reliability.sh: needs root" >&2; exit 1; }
[ -x "$jcs" ] || { echo "reliability.sh: no jcs at $jcs (cargo build --release -p jcs)" >&2; exit 1; }
export JCS_HOME
JCS_HOME=$(mktemp -d /tmp/jcs-bench-reliability.XXXXXX)
cleanup() {
  # The VEs of killed runs leave their cgroups to jcs gc.
  "$jcs" gc >/dev/null 2>&1 || true
  [ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$JCS_HOME"
}
trap cleanup EXIT
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create web --template bb --persist /data >/dev/null
"$jcs" run web -- true
complete=0 gapped=0 silent=0 killed_daemon=0 killed_run=0 restarts_ms=()
# (A pause every 100 lines: the run lasts about half a second, so the kills land inside it.)
script="i=0; while [ \$i -lt $lines ]; do echo \$i >> /data/f; i=\$((i+1)); [ \$((i % 100)) = 0 ] && usleep 25000; done; true"
for t in $(seq 1 "$trials"); do
  rm -f "$JCS_HOME/persist/web/data/f"
  "$jcs" run web -- /bin/sh -c "$script" >/dev/null 2>"$JCS_HOME/run.err" &
  run=$!
  sleep "0.$(( RANDOM % 40 + 5 ))"
  if [ $((t % 5)) -eq 0 ]; then
    kill -9 "$run" 2>/dev/null && killed_run=$((killed_run + 1)) || true
  elif [ -f "$JCS_HOME/daemon.pid" ]; then
    kill -9 "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null && killed_daemon=$((killed_daemon + 1)) || true
  fi
  code=0; { wait "$run"; } 2>/dev/null || code=$?
  # The next run starts a recorder again (recovery, gaps for what ran unrecorded).
  t0=$(date +%s%N)
  "$jcs" run web -- true 2>/dev/null || true
  restarts_ms+=($(( ($(date +%s%N) - t0) / 1000000 )))
  ve=$("$jcs" ps --all --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(sorted(x["id"] for x in v)[-2])')
  log=$("$jcs" log --ve "$ve" --json 2>/dev/null || true)
  writes=$(grep -c '"op":"write"' <<<"$(grep '"dst":"file:/data/f"' <<<"$log")" || true)
  gaps=$(grep -c '"op":"gap"' <<<"$log" || true)
  wrote=$(wc -l < "$JCS_HOME/persist/web/data/f" 2>/dev/null || echo 0)
  if [ "$writes" -ge "$wrote" ] && [ "$gaps" = 0 ]; then
    complete=$((complete + 1))
  elif [ "$gaps" -gt 0 ]; then
    gapped=$((gapped + 1))
  else
    silent=$((silent + 1))
    echo "trial $t: VE $ve exit $code: the file has $wrote lines, the journal $writes writes, no gap: $(cat "$JCS_HOME/run.err")" >&2
  fi
done
"$jcs" verify >/dev/null && verified=yes || verified=NO
sorted=$(printf '%s\n' "${restarts_ms[@]}" | sort -n)
median=$(sed -n "$(( (${#restarts_ms[@]} + 1) / 2 ))p" <<<"$sorted")
{
  echo "Reliability, $(date -u '+%Y-%m-%d %H:%M') UTC, $(uname -n), kernel $(uname -r), $(nproc) CPUs"
  echo
  echo "$trials trials of a VE writing $lines lines; SIGKILL of the recorder in $killed_daemon, of \`jcs run\` in $killed_run"
  echo
  echo "| outcome | trials |"
  echo "|---|---|"
  echo "| complete (every line the file holds has its write in the journal; no gap) | $complete |"
  echo "| incomplete, said so (a gap for the VE) | $gapped |"
  echo "| **silent loss** | $silent |"
  echo
  echo "journal verifies after all trials: $verified; next run after a kill (recorder restart and recovery included), median: ${median} ms"
} | tee "$out"
[ "$silent" = 0 ] && [ "$verified" = yes ]
