#!/usr/bin/env bash
# VE start with each containment option, side by side with bwrap in one run (hyperfine,
# warm): `jcs run APP -- true` by default (the device program, a session of its own, only
# fds 0-2), with -t (its own pty and the proxy), --disk 64M (an ext4 image per VE),
# --cpus 1, and --net bridge (a veth and the per-VE nftables transaction). Everything runs in
# a network namespace this script creates (the bridge lives there) and deletes.
#
#   bench/ve-start-options.sh [--runs N] [--out FILE]
#
# Needs root, hyperfine, bubblewrap, nftables (scripts/install-deps.sh --all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=40
out="$here/results/ve-start-options-$(date -u +%Y%m%d).md"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=ve-start-options.sh REPO=$repo
. "$here/lib/common.sh"
need_root_and hyperfine bwrap nft
jcs=$(release_jcs)
work=$(mktemp -d /tmp/jcs-bench-options.XXXXXX)
ns="jcs-bench-$$"
cleanup() {
  stop_store_daemon "$work/store"
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
in_ns ip link set lo up
export JCS_HOME="$work/store" JCS_BRIDGE_CIDR=10.78.0.0/16 JCS_RUN_DIR="$work/store/run"
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create bench --template bb >/dev/null
"$jcs" app create benchnet --template bb --net bridge >/dev/null
rootfs="$JCS_HOME/templates/bb/1"
declare -a names cmds
names+=(bwrap);       cmds+=("bwrap --bind $rootfs / --proc /proc --dev /dev --unshare-all /usr/bin/true")
names+=(jcs);         cmds+=("$jcs run -T bench -- true")
names+=("jcs -t");    cmds+=("$jcs run -t bench -- true")
names+=("jcs --disk 64M"); cmds+=("$jcs run -T --disk 64M bench -- true")
names+=("jcs --cpus 1");   cmds+=("$jcs run -T --cpus 1 bench -- true")
names+=("jcs --net bridge"); cmds+=("$jcs run -T benchnet -- true")
for i in "${!names[@]}"; do
  if ! in_ns ${cmds[$i]} >/dev/null 2>"$work/err"; then
    echo "ve-start-options.sh: ${names[$i]} does not run: $(tail -1 "$work/err")" >&2; exit 1
  fi
done
args=()
for i in "${!names[@]}"; do args+=(--command-name "${names[$i]}" "nsenter --net=/run/netns/$ns ${cmds[$i]}"); done
mkdir -p "$(dirname "$out")"
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/h.json" "${args[@]}" >/dev/null
python3 - "$work/h.json" "$runs" > "$out" <<'PY'
import json, os, platform, statistics, sys, datetime
r = json.load(open(sys.argv[1]))["results"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"VE start by option, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
      f"kernel {platform.release()}, {os.cpu_count()} CPUs ({cpu}), {sys.argv[2]} runs each, warm, "
      "all through nsenter into the script's network namespace\n")
med = {x["command"]: statistics.median(x["times"]) * 1e3 for x in r}
print("| command | median ms | × jcs default | × bwrap |")
print("|---|---|---|---|")
for x in r:
    n = x["command"]
    print(f"| {n} | {med[n]:.2f} | {med[n] / med['jcs']:.2f} | {med[n] / med['bwrap']:.2f} |")
PY
cat "$out"
