#!/usr/bin/env bash
# What keeping pre-images costs (docs/policy.md, "Pre-images"), side by side in one run, inside
# recorded VEs of an app without and with `[recovery] preimages = true`:
#   wopen /data    open(O_WRONLY)+close of one file of persistent storage: the supervisor
#                  answers every one (a pre-image only the first time)
#   wopen /tmp     the same in the VE's own files (answered, nothing kept)
#   firstwrite     the first write-open of each of M files of 64 KiB (each keeps a pre-image)
#   getppid        no write intent: the filter's cost on everything else
#   openclose      open(O_RDONLY)+close of that file: with abort_on_close every close goes to
#                  the supervisor too (a third app, `aoc`: preimages + abort_on_close = "denied")
# and the naive alternative, a copy of the persistent directory at every VE start
# (`cp -a --reflink=auto`, what a snapshot-per-VE would cost), against the same M files.
#   bench/preimage-cost.sh [N] [ROUNDS] [M]   (default 20000 3 200; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-20000}
rounds=${2:-3}
m=${3:-200}
jcs="$repo/target/release/jcs"
(cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-preimage.XXXXXX)
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
cleanup() {
  [ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -static -o "$work/policy-loop" "$here/src/policy-loop.c"
"$jcs" template create bb --busybox >/dev/null
printf '[recovery]\npreimages = true\n' > "$work/pre.toml"
printf '[recovery]\npreimages = true\nabort_on_close = "denied"\n' > "$work/aoc.toml"
for app in plain pre aoc; do
  "$jcs" app create "$app" --template bb --persist /data >/dev/null
  cp "$work/policy-loop" "$JCS_HOME/persist/$app/data/"
  head -c 100 /dev/urandom > "$JCS_HOME/persist/$app/data/f"
done
"$jcs" app policy pre "$work/pre.toml" >/dev/null
"$jcs" app policy aoc "$work/aoc.toml" >/dev/null
files() { # fresh M files of 64 KiB for one firstwrite run
  rm -rf "$1"; mkdir -p "$1"
  for i in $(seq 0 $(( m - 1 ))); do head -c 65536 /dev/urandom > "$1/f$i"; done
}
out="$work/results"
: > "$out"
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  for app in plain pre aoc; do
    run() { "$jcs" run "$app" -- /data/policy-loop "$@"; }
    echo "$app wopen-data $(run wopen "$n" /data/f)" >> "$out"
    echo "$app wopen-tmp $("$jcs" run "$app" -- /bin/sh -c "touch /tmp/f && /data/policy-loop wopen $n /tmp/f")" >> "$out"
    files "$JCS_HOME/persist/$app/data/m"
    echo "$app firstwrite $(run firstwrite "$m" /data/m)" >> "$out"
    echo "$app getppid $(run getppid $(( n * 10 )) -)" >> "$out"
    echo "$app openclose $(run openclose "$n" /data/f)" >> "$out"
  done
  files "$work/snap-src"
  t0=$(date +%s%N); cp -a --reflink=auto "$work/snap-src" "$work/snap-$r"; sync -f "$work/snap-$r"; t1=$(date +%s%N)
  echo "copy snapshot $(( (t1 - t0) / m ))" >> "$out" # ns per file
done
store_bytes=$(du -sb "$JCS_HOME/versions/objects" | cut -f1)
objects=$(ls "$JCS_HOME/versions/objects" | wc -l)
python3 - "$out" "$n" "$rounds" "$m" "$store_bytes" "$objects" <<'PY'
import statistics, sys
med = {}
for l in open(sys.argv[1]):
    app, loop, v = l.split()
    med.setdefault((app, loop), []).append(float(v))
med = {k: statistics.median(v) for k, v in med.items()}
n, rounds, m = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"{n} write-opens, {m} first writes of 64 KiB files, {n * 10} getppid; medians of {rounds} rounds, inside recorded VEs\n")
print("| loop | no pre-images ns | pre-images ns | × | + abort_on_close ns | × |")
print("|---|---|---|---|---|---|")
for loop, what in (("wopen-data", "open(O_WRONLY)+close, persistent storage (kept once)"),
                   ("wopen-tmp", "open(O_WRONLY)+close, the VE's own files"),
                   ("firstwrite", "first write-open of a 64 KiB file (its pre-image kept)"),
                   ("getppid", "getppid (no write intent)"),
                   ("openclose", "open(O_RDONLY)+close, persistent storage")):
    a, b, c = med[("plain", loop)], med[("pre", loop)], med[("aoc", loop)]
    print(f"| {what} | {a:.0f} | {b:.0f} | {b / a:.2f} | {c:.0f} | {c / a:.2f} |")
c = med[("copy", "snapshot")]
print(f"\nnaive alternative, a snapshot of the persistent directory at each VE start (cp -a --reflink=auto): "
      f"{c:.0f} ns per 64 KiB file, for every file at every start, changed or not; pre-images: "
      f"{med[('pre', 'firstwrite')] - med[('plain', 'firstwrite')]:.0f} ns per file the VE actually changes")
print(f"version store: {int(sys.argv[6])} objects, {int(sys.argv[5]):,} bytes "
      f"(the {rounds * m} files kept were random: no deduplication possible; the 100-byte file once)")
PY
