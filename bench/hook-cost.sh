#!/usr/bin/env bash
# What hooking system calls costs a process that is not in any VE, by mechanism, side by side
# in one run: a loop of getppid (a call JCS never records) and of write(1 byte) to /dev/null (a
# call it records), under
#   none             nothing attached
#   raw-empty        the BTF raw tracepoints sys_enter/sys_exit with empty programs (the floor
#                    of the mechanism the monitor uses: every system call of the host)
#   raw-task         ... gating on task-local storage
#   raw-cgroup       ... gating on the cgroup in the watched map (the monitor's gate)
#   write-tracepoint the per-syscall tracepoints syscalls:sys_{enter,exit}_write (every other
#                    call pays the kernel's syscall-tracing slow path only)
#   write-fentry     a trampoline on ksys_write (no cost for other calls), and
#   lsm              a BPF LSM hook: both only where the kernel allows them (reported when not)
# Runs in a mount namespace of its own (tracefs is mounted there, not on the host).
#   bench/hook-cost.sh [ROUNDS]   (default 3; needs root, clang, gcc)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
rounds=${1:-3}
[ "$(id -u)" = 0 ] || { echo "hook-cost.sh: needs root" >&2; exit 1; }
if [ -z "${HOOK_COST_INNER:-}" ]; then
  (cd "$repo" && cargo build --release --quiet -p monitor --example attach)
  export HOOK_COST_INNER=1
  exec unshare -m "$0" "$@"
fi
mount -t tracefs none /sys/kernel/tracing 2>/dev/null || true
work=$(mktemp -d /tmp/jcs-bench-hooks.XXXXXX)
trap 'rm -rf "$work"' EXIT
inc=$(dirname "$(find "$repo/target" -path '*libbpf-sys*/out/include/bpf/bpf_helpers.h' | head -1)")
clang -O2 -g -target bpf -I"$(dirname "$inc")" -c "$here/src/hooks.bpf.c" -o "$work/hooks.o"
gcc -O2 -o "$work/loop" "$here/src/syscall-loop.c"
attach="$repo/target/release/examples/attach"
declare -A progs=(
  [raw-empty]=raw_enter_empty,raw_exit_empty
  [raw-task]=raw_enter_task,raw_exit_task
  [raw-cgroup]=raw_enter_cgroup,raw_exit_cgroup
  [write-tracepoint]=write_enter_cgroup,write_exit_cgroup
  [write-fentry]=write_fentry
  [lsm]=lsm_file_permission
)
modes=(none raw-empty raw-task raw-cgroup write-tracepoint write-fentry lsm)
declare -A refused
n=500000
for r in $(seq "$rounds"); do
  for m in "${modes[@]}"; do
    [ -n "${refused[$m]:-}" ] && continue
    pid=""
    if [ "$m" != none ]; then
      "$attach" "$work/hooks.o" 600 "${progs[$m]}" > "$work/attach.out" 2>&1 &
      pid=$!
      for _ in $(seq 50); do
        grep -q "attached\|not attached\|attach:" "$work/attach.out" 2>/dev/null && break
        sleep 0.1
      done
      if ! grep -q ": attached" "$work/attach.out" || grep -q "not attached\|attach:" "$work/attach.out"; then
        refused[$m]=$(grep -m1 "not attached\|attach:" "$work/attach.out" | sed 's/^attach: //')
        kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        continue
      fi
    fi
    g=$("$work/loop" getppid $n -)
    w=$("$work/loop" write $n /dev/null)
    echo "$m $g $w" >> "$work/results"
    if [ -n "$pid" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
done
python3 - "$work/results" "$rounds" <<PY
import statistics, sys, collections, platform, datetime, os
rows = collections.defaultdict(lambda: ([], []))
for line in open(sys.argv[1]):
    m, g, w = line.split()
    rows[m][0].append(float(g)); rows[m][1].append(float(w))
print(f"Hook cost for a process outside any VE, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
      f"kernel {platform.release()}, {os.cpu_count()} CPUs, medians of {sys.argv[2]} rounds\n")
print("| mechanism | getppid ns (not recorded) | + | write ns (recorded) | + |")
print("|---|---|---|---|---|")
g0 = statistics.median(rows["none"][0]); w0 = statistics.median(rows["none"][1])
for m in "${modes[*]}".split():
    if m not in rows: continue
    g = statistics.median(rows[m][0]); w = statistics.median(rows[m][1])
    print(f"| {m} | {g:.0f} | {g - g0:+.0f} | {w:.0f} | {w - w0:+.0f} |")
PY
for m in "${!refused[@]}"; do echo "- $m: refused by this kernel: ${refused[$m]}"; done
