#!/usr/bin/env bash
# VE start latency: `jcs run APP -- true` (busybox template) against unshare (5 namespaces),
# bwrap, runc, firejail and systemd-nspawn, and crun and podman when they are installed
# (`apt-get install crun podman`; podman runs the same root file system with --rootfs), all
# measured in the same run with hyperfine.
#
#   bench/ve-start.sh [--runs N] [--out FILE]
#
# Two modes per tool:
#   warm: runs back to back (hyperfine default);
#   cold: 250 ms of idle before each run (--prepare 'sleep 0.25'), which is what a VE start
#         on a quiet host sees: on hybrid cgroup hosts the first cgroup v1 migration after a
#         quiet period waits for an RCU grace period.
# Every tool runs /usr/bin/true from the same busybox root file system, except firejail,
# which always uses the host's root (it runs /bin/true).
# Prints a Markdown table (medians, interquartile range, ratio to jcs) and writes the raw
# hyperfine JSON next to --out. Needs root, hyperfine, bubblewrap, runc, firejail,
# systemd-container (./setup.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=100
out="$here/results/ve-start-$(date -u +%Y%m%d).md"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=ve-start.sh REPO=$repo
. "$here/lib/common.sh"
need_root_and hyperfine bwrap runc firejail systemd-nspawn unshare python3
jcs=$(release_jcs)

work=$(mktemp -d /tmp/jcs-bench-start.XXXXXX)
cleanup() {
  # Stop the store's monitor daemon (jcs run started it) before removing the store.
  stop_store_daemon "$work/store"
  rm -rf "$work"
}
trap cleanup EXIT
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create bench --template bb >/dev/null
rootfs="$work/rootfs"
cp -a "$JCS_HOME/templates/bb/1" "$rootfs"
printf 'ID=busybox\nNAME=busybox\n' > "$rootfs/etc/os-release"
mkdir -p "$rootfs/usr/lib" && cp "$rootfs/etc/os-release" "$rootfs/usr/lib/os-release"
bundle="$work/bundle"
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" "$rootfs" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/usr/bin/true"]
c["root"] = {"path": sys.argv[2], "readonly": True}
json.dump(c, open(p, "w"))
PY

declare -a names cmds
names+=(jcs);            cmds+=("$jcs run bench -- /usr/bin/true")
names+=(unshare);        cmds+=("unshare --mount --pid --uts --ipc --net --fork --root=$rootfs /usr/bin/true")
names+=(bwrap);          cmds+=("bwrap --bind $rootfs / --proc /proc --dev /dev --unshare-all /usr/bin/true")
names+=(runc);           cmds+=("runc --root $work/runc-state run --bundle $bundle jcs-bench")
names+=(firejail);       cmds+=("firejail --quiet --noprofile /bin/true")
names+=(systemd-nspawn); cmds+=("systemd-nspawn -q --register=no --keep-unit -D $rootfs /usr/bin/true")
# The optional peers: an OCI runtime of the same bundle, podman on the same root (no image
# pull). One that does not run on this host is left out with a note (crun refuses hybrid
# cgroup hierarchies).
notes=()
try_peer() {
  if $2 >/dev/null 2>"$work/err"; then
    names+=("$1"); cmds+=("$2")
  else
    notes+=("$1: does not run here: $(tail -1 "$work/err")")
    echo "ve-start.sh: ${notes[-1]}" >&2
  fi
}
command -v crun >/dev/null && try_peer crun "crun --root $work/crun-state run --bundle $bundle jcs-bench-crun"
command -v podman >/dev/null && try_peer podman "podman --root $work/podman --runroot $work/podman-run run --rm --network none --rootfs $rootfs /usr/bin/true"

# Check that each command works before timing it.
for i in "${!names[@]}"; do
  if ! ${cmds[$i]} >/dev/null 2>"$work/err"; then
    echo "ve-start.sh: ${names[$i]} does not run here: $(tail -1 "$work/err")" >&2; exit 1
  fi
done

mkdir -p "$(dirname "$out")"
json_dir="${out%.md}"
mkdir -p "$json_dir"
for mode in warm cold; do
  extra=()
  [ "$mode" = cold ] && extra=(--prepare 'sleep 0.25')
  for i in "${!names[@]}"; do
    echo "== $mode ${names[$i]}" >&2
    hyperfine -N --warmup 5 --runs "$runs" "${extra[@]}" --export-json "$json_dir/$mode-${names[$i]}.json" \
      --command-name "${names[$i]}" "${cmds[$i]}" >/dev/null
  done
done

PEER_NOTES="$(printf '%s\n' "${notes[@]}")" python3 - "$json_dir" "$runs" "${names[@]}" > "$out" <<'PY'
import json, os, platform, statistics, subprocess, sys, datetime
d, runs, names = sys.argv[1], sys.argv[2], sys.argv[3:]
def q(xs, f):
    xs = sorted(xs); k = (len(xs) - 1) * f; lo = int(k); hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"VE start, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
      f"kernel {platform.release()}, {os.cpu_count()} CPUs ({cpu}), {runs} runs per cell\n")
for n in os.environ.get("PEER_NOTES", "").split("\n"):
    if n:
        print(f"- {n}")
print()
print("| tool | warm median ms | warm IQR ms | cold median ms | cold IQR ms | warm ×jcs | cold ×jcs |")
print("|---|---|---|---|---|---|---|")
med = {}
for mode in ["warm", "cold"]:
    for n in names:
        t = json.load(open(f"{d}/{mode}-{n}.json"))["results"][0]["times"]
        med[(mode, n)] = (statistics.median(t) * 1e3, q(t, .25) * 1e3, q(t, .75) * 1e3)
for n in names:
    w, c = med[("warm", n)], med[("cold", n)]
    print(f"| {n} | {w[0]:.2f} | {w[1]:.2f}–{w[2]:.2f} | {c[0]:.2f} | {c[1]:.2f}–{c[2]:.2f} | "
          f"{w[0] / med[('warm', 'jcs')][0]:.2f} | {c[0] / med[('cold', 'jcs')][0]:.2f} |")
PY
cat "$out"
