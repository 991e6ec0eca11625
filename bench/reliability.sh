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
# With --disk-full, the store is on a small tmpfs of its own, and instead of a kill each trial
# fills it (a filler file leaving 0-255 KiB free) before the VE runs, then frees it: the same
# outcomes are counted, and whether the recorder stayed up and `jcs run` said the disk is full.
#
#   bench/reliability.sh [--trials T] [--lines N] [--disk-full] [--out FILE] [--jcs PATH]
#
# Needs root (scripts/install-deps.sh; a release build: cargo build --release -p jcs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
trials=100 lines=2000 disk_full=0
out="$here/results/reliability-$(date -u +%Y%m%d).md"
jcs="$here/../target/release/jcs"
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) trials=$2; shift 2 ;;
    --lines) lines=$2; shift 2 ;;
    --disk-full) disk_full=1; shift ;;
    --out) out=$2; shift 2 ;;
    --jcs) jcs=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "reliability.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "reliability.sh: needs root" >&2; exit 1; }
[ -x "$jcs" ] || { echo "reliability.sh: no jcs at $jcs (cargo build --release -p jcs)" >&2; exit 1; }
export JCS_HOME
base=$(mktemp -d /tmp/jcs-bench-reliability.XXXXXX)
JCS_HOME=$base/store
export JCS_RUN_DIR=$base/store/run
if [ "$disk_full" = 1 ]; then
  mount -t tmpfs -o size=48m tmpfs "$base"
fi
cleanup() {
  # The VEs of killed runs leave their cgroups to jcs gc.
  rm -f "$base/filler"
  "$jcs" gc >/dev/null 2>&1 || true
  [ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
  sleep 0.3
  [ "$disk_full" = 1 ] && umount "$base"
  rm -rf "$base"
}
trap cleanup EXIT
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create web --template bb --persist /data >/dev/null
"$jcs" run web -- true
complete=0 gapped=0 silent=0 killed_daemon=0 killed_run=0 restarts_ms=()
full_runs=0 full_said=0 daemon_up=0
# (A pause every 100 lines: the run lasts about half a second, so the kills land inside it.)
script="i=0; while [ \$i -lt $lines ]; do echo \$i >> /data/f; i=\$((i+1)); [ \$((i % 100)) = 0 ] && usleep 25000; done; true"
for t in $(seq 1 "$trials"); do
  rm -f "$JCS_HOME/persist/web/data/f"
  if [ "$disk_full" = 1 ]; then
    # Leave 0-255 KiB free, run the VE on the full disk, then make room again.
    avail=$(df -B1 --output=avail "$base" | tail -1)
    leave=$(( (RANDOM % 256) * 1024 ))
    [ "$avail" -gt "$leave" ] && fallocate -l $(( avail - leave )) "$base/filler"
    code=0
    "$jcs" run web -- /bin/sh -c "$script" >/dev/null 2>"$base/run.err" || code=$?
    if [ "$code" != 0 ]; then
      full_runs=$((full_runs + 1))
      grep -q "full" "$base/run.err" && full_said=$((full_said + 1))
    fi
    [ -f "$JCS_HOME/daemon.pid" ] && kill -0 "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null \
      && daemon_up=$((daemon_up + 1))
    rm -f "$base/filler"
    cp "$base/run.err" "$JCS_HOME/run.err" 2>/dev/null || true
  else
  "$jcs" run web -- /bin/sh -c "$script" >/dev/null 2>"$JCS_HOME/run.err" &
  run=$!
  sleep "0.$(( RANDOM % 40 + 5 ))"
  if [ $((t % 5)) -eq 0 ]; then
    kill -9 "$run" 2>/dev/null && killed_run=$((killed_run + 1)) || true
  elif [ -f "$JCS_HOME/daemon.pid" ]; then
    kill -9 "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null && killed_daemon=$((killed_daemon + 1)) || true
  fi
  code=0; { wait "$run"; } 2>/dev/null || code=$?
  fi
  # The next run starts a recorder again (recovery, gaps for what ran unrecorded).
  t0=$(date +%s%N)
  "$jcs" run web -- true 2>/dev/null || true
  restarts_ms+=($(( ($(date +%s%N) - t0) / 1000000 )))
  ve=$("$jcs" ps --all --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print(sorted(x["ve"] for x in v["ves"])[-2])')
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
  if [ "$disk_full" = 1 ]; then
    echo "$trials trials of a VE writing $lines lines into a store on a 48 MiB tmpfs filled to 0-255 KiB free;"
    echo "\`jcs run\` failed in $full_runs, saying the disk is full in $full_said; the recorder was still up after $daemon_up"
  else
    echo "$trials trials of a VE writing $lines lines; SIGKILL of the recorder in $killed_daemon, of \`jcs run\` in $killed_run"
  fi
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
