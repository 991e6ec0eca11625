#!/usr/bin/env bash
# VE start and end against the size of the app's persistent storage: `jcs run APP -- true`
# (busybox template, /data persistent) with 0, 1,000, 10,000 and 40,000 files in /data,
# against bwrap running the same root file system with the same directory bound at /data,
# measured in the same run with hyperfine (warm: back to back). For the integrity report's
# storage changes jcs lists its storage directories' names before and after a recorded VE
# (a directory unchanged since is not listed again; the names after a VE are kept for the
# next), and stamps every entry (lstat) before
# and after an unrecorded one (JCS_MONITOR=off, the third column: what every VE paid before
# 2026-12-04): this shows what each costs as storage grows.
#
#   bench/ve-start-storage.sh [--runs N] [--sizes "0 1000 10000 40000"]
#
# Prints a Markdown table (medians in ms, ratios to bwrap). Needs root, hyperfine, bubblewrap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=20
sizes="0 1000 10000 40000"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set /{/^set /d;p}' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=ve-start-storage.sh REPO=$repo
. "$here/lib/common.sh"
need_root_and hyperfine bwrap python3
jcs=$(release_jcs)
work=$(mktemp -d /tmp/jcs-bench-storage.XXXXXX)
cleanup() {
  stop_store_daemon "$work/store"
  rm -rf "$work"
}
trap cleanup EXIT
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create bench --template bb --persist /data >/dev/null
rootfs="$JCS_HOME/templates/bb/1"
data="$JCS_HOME/persist/bench/data"
"$jcs" run bench -- true # the daemon (stays up)
echo "| files in /data | jcs run (ms) | bwrap (ms) | jcs unrecorded, stamps (ms) | jcs ÷ bwrap | unrecorded ÷ bwrap |"
echo "|---|---|---|---|---|---|"
have=0
for n in $sizes; do
  # Files spread over directories of 1,000, as a profile or a mail store would be.
  python3 - "$data" "$have" "$n" <<'PY'
import os, sys
d, have, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(have, n):
    sub = os.path.join(d, "d%03d" % (i // 1000))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%06d" % i), "w") as f:
        f.write("x" * (i % 4096))
PY
  have=$n
  hyperfine -N --runs "$runs" --warmup 2 --export-json "$work/h-$n.json" \
    "$jcs run bench -- /usr/bin/true" \
    "bwrap --bind $rootfs / --bind $data /data --proc /proc --dev /dev --unshare-all --die-with-parent /usr/bin/true" \
    "env JCS_MONITOR=off $jcs run bench -- /usr/bin/true" \
    >/dev/null
  python3 - "$work/h-$n.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
j, b, u = (x["median"] * 1000 for x in r)
print(f"| {int(sys.argv[2]):,} | {j:.1f} | {b:.1f} | {u:.1f} | {j / b:.1f} | {u / b:.1f} |")
PY
done
