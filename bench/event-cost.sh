#!/usr/bin/env bash
# CPU per recorded event, end to end, for one or more builds side by side (interleaved, the
# same machine, the same minutes): a VE's loop of write(1 byte) to a file of persistent
# storage (every call a transaction), of open+close of it, and of creating new files there
# (open O_CREAT|O_EXCL + close: a new variable and a name each; N/50 of them), timed from
# inside the loop,
#   off      JCS_MONITOR=off (the VE alone)
#   rec      recorded
# and per recorded event:
#   +ns      what recording adds to the VE's call (rec - off: the kernel's programs, the ring
#            buffer, and whatever the daemon's CPU use costs the VE on a 2-CPU machine)
#   bpf      the tracing programs' own run time per call (kernel.bpf_stats_enabled, in a
#            separate run: the statistics cost time themselves)
#   daemon   the daemon's CPU per event, by thread (/proc/PID/task/*/schedstat: monitor =
#            ring buffer, decode, translation; journal = blocks, compression, hash chain,
#            fdatasync; dictionary = new variables and names into the catalog (on the
#            monitor thread before 2026-12-04); indexer = segment indexes (it reads what
#            was written every 5 s: counted 6 s after the loop; before 2026-12-04 17:30 it
#            was counted right after it, and mostly missed)
#   total    +ns + daemon: the issue's "CPU per recorded event end to end"
#   bench/event-cost.sh [N] [ROUNDS] [JCS_BIN ...]   (default 1000000 3, this tree's release
#                                                    build; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-1000000}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : $# ))
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  (cd "$repo" && cargo build --release --quiet)
  bins=("$repo/target/release/jcs")
fi
command -v gcc >/dev/null || { echo "event-cost.sh: gcc is missing (scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/jcs-bench-event.XXXXXX)
cleanup() {
  sysctl -q kernel.bpf_stats_enabled=0 || true
  for s in "$work"/store-*; do
    [ -f "$s/daemon.pid" ] && kill "$(cat "$s/daemon.pid")" 2>/dev/null || true
  done
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -static -o "$work/syscall-loop" "$here/src/syscall-loop.c"
out="$work/results"
: > "$out"
. "$here/lib/daemon.sh"
for r in $(seq "$rounds"); do
  for i in "${!bins[@]}"; do
    jcs=${bins[$i]}
    echo "round $r/$rounds: build $i" >&2
    export JCS_HOME="$work/store-$i" JCS_RUN_DIR="$work/store-$i/run"
    if [ ! -d "$JCS_HOME" ]; then
      "$jcs" template create bb --busybox >/dev/null
      "$jcs" app create bench --template bb --persist /data >/dev/null
      cp "$work/syscall-loop" "$JCS_HOME/persist/bench/data/"
    fi
    "$jcs" run bench -- true # the daemon (stays up)
    d=$(cat "$JCS_HOME/daemon.pid")
    for l in write openclose create; do
      # open+close, create+close: two recorded events per iteration.
      per=1 ln=$n target=/data/f
      [ $l = write ] || per=2
      [ $l = create ] && ln=$(( n / 50 ))
      # (Each create loop in a directory of its own: every file it makes is new.)
      t() { if [ $l = create ]; then echo "/data/c-$r-$i-$1"; else echo "$target"; fi; }
      off=$(JCS_MONITOR=off "$jcs" run bench -- /data/syscall-loop $l "$ln" "$(t off)")
      daemon_threads_ns "$d" > "$work/t0"
      rec=$("$jcs" run bench -- /data/syscall-loop $l "$ln" "$(t rec)")
      daemon_threads_ns "$d" > "$work/t1"
      # The indexer reads what was written every 5 s: its share is counted once it has
      # (the other threads' right after the loop, before their idle ticks add up).
      sleep 6
      daemon_threads_ns "$d" > "$work/t2"
      daemon=$(join "$work/t0" "$work/t1" | join - "$work/t2" | awk -v n="$ln" -v per=$per '
        {d[$1] = ($3 - $2) / n / per; late[$1] = ($4 - $2) / n / per}
        END {printf "%.1f %.1f %.1f %.1f", d["jcs-monitor"], d["jcs-journal"], d["jcs-dictionary"], late["jcs-indexer"]}')
      sysctl -q kernel.bpf_stats_enabled=1
      b0=$(bpf_run_ns "$d")
      "$jcs" run bench -- /data/syscall-loop $l "$ln" "$(t bpf)" >/dev/null
      b1=$(bpf_run_ns "$d")
      sysctl -q kernel.bpf_stats_enabled=0
      echo "$i $l $off $rec $(( (b1 - b0) / ln / per )) $daemon $per" >> "$out"
    done
    kill "$d"; while [ -d "/proc/$d" ]; do sleep 0.05; done
  done
done
python3 - "$out" "$n" "$rounds" "${bins[@]}" <<'EOF'
import statistics, sys
path, n, rounds, bins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rows = {}
for line in open(path):
    i, l, off, rec, bpf, mon, jou, dic, idx, per = line.split()
    rows.setdefault((int(i), l), []).append(
        (float(off), float(rec), float(bpf), float(mon), float(jou), float(dic), float(idx), int(per)))
print(f"N = {n} per loop, medians of {rounds} rounds, builds interleaved")
print()
print("| build | loop | off ns | rec ns | × off | + ns per event | bpf ns per event | daemon ns per event (monitor + journal + dictionary + indexer) | total ns per event |")
print("|---|---|---|---|---|---|---|---|---|")
for (i, l), v in sorted(rows.items()):
    m = lambda k: statistics.median(x[k] for x in v)
    per = v[0][7]
    plus = (m(1) - m(0)) / per
    daemon = m(3) + m(4) + m(5) + m(6)
    print(f"| {bins[i]} | {l} | {m(0):.0f} | {m(1):.0f} | {m(1) / m(0):.2f} | {plus:.0f} | {m(2):.0f} | "
          f"{daemon:.0f} ({m(3):.0f} + {m(4):.0f} + {m(5):.0f} + {m(6):.0f}) | {plus + daemon:.0f} |")
EOF
