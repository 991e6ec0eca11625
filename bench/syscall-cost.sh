#!/usr/bin/env bash
# Cost per system call, side by side in one run: a loop of write(1 byte) to a tmpfs file, a loop of
# open+close, and a loop of getppid (counted, never recorded: the cost of the VE filter
# alone), timed from inside the loop, under
#   none        no tracing at all
#   monitor     a host process (outside any VE) while the JCS daemon is up and idle (no VE:
#               its tracing programs are detached)
#   busy        a host process while a VE runs (the tracing programs are attached)
#   ve-off      inside a VE, JCS_MONITOR=off (the VE alone)
#   ve-rec      inside a recorded VE (every call is an atomic transaction in the journal)
#   auditd      auditd with rules for the same system calls (host-wide, as it is used)
#   strace      strace -f, output to a file
#   bpftrace    bpftrace counting system calls per cgroup
# Each configuration runs once per round; the table shows medians over the rounds.
#   bench/syscall-cost.sh [N] [ROUNDS]   (default 500000 3; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-500000}
rounds=${2:-3}
jcs="$repo/target/release/jcs"
for t in gcc auditd auditctl strace bpftrace python3; do
  command -v "$t" >/dev/null || { echo "syscall-cost.sh: $t is missing (scripts/install-deps.sh --all)" >&2; exit 1; }
done
(cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-syscall.XXXXXX)
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
auditd_pid=""
cleanup() {
  auditctl -d always,exit -F arch=b64 -S write -S openat -S close -k jcsbench 2>/dev/null || true
  [ -n "$auditd_pid" ] && kill "$auditd_pid" 2>/dev/null || true
  [ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$work"
  [ -n "${shm:-}" ] && rm -f "$shm"
}
trap cleanup EXIT
gcc -O2 -static -o "$work/syscall-loop" "$here/src/syscall-loop.c"
"$jcs" template create bb --busybox >/dev/null
"$jcs" app create bench --template bb --persist /data >/dev/null
cp "$work/syscall-loop" "$JCS_HOME/persist/bench/data/"
loop="$work/syscall-loop"
out="$work/results"
: > "$out"
rec() { echo "$1 $2 $3" >> "$out"; } # config loop ns/op
# write(1 B) goes to a file in tmpfs (/dev/shm: the host's, and the VE's own instance, where
# it is recorded): a disk file system's own variance would drown the differences measured
# here. (/dev/null was used until classification began dropping its writes.)
shm="/dev/shm/jcs-syscall-cost-$$"
target() { if [ "$1" = write ]; then echo "$3"; else echo "$2"; fi; }
host() { "$loop" "$1" "$2" "$(target "$1" "$work/f" "$shm")"; }
loops="write openclose getppid"
# In the VE, open+close goes to a file of persistent storage (recorded): one in /tmp, its
# dirties, is the VE's own, and its opens and closes are dropped in the kernel.
ve() { "$jcs" run bench -- /data/syscall-loop "$1" "$2" "$(target "$1" /data/f /dev/shm/f)"; }
daemon_stop() {
  if [ -f "$JCS_HOME/daemon.pid" ]; then
    local p; p=$(cat "$JCS_HOME/daemon.pid"); kill "$p" 2>/dev/null || true
    while [ -d "/proc/$p" ]; do sleep 0.05; done
    rm -f "$JCS_HOME/daemon.pid"
  fi
}
slow=$(( n / 10 )) # strace and auditd are ~10-50x slower per call
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  daemon_stop
  for l in $loops; do rec none $l "$(host $l "$n")"; done
  "$jcs" run bench -- true # starts the daemon (it stays, idle)
  # Idle means its tracing programs are detached: they stay attached for a second after the
  # last VE (Monitor::LINGER), and until 2026-12-04 this row was measured inside that second.
  d=$(cat "$JCS_HOME/daemon.pid")
  for _ in $(seq 100); do
    links=$(ls -l "/proc/$d/fd" 2>/dev/null | grep -c 'anon_inode:bpf_link' || true)
    [ "$links" = 0 ] && break
    sleep 0.05
  done
  [ "$links" = 0 ] || echo "syscall-cost.sh: the daemon still has $links BPF links attached" >&2
  for l in $loops; do rec monitor $l "$(host $l "$n")"; done
  # A VE that only sleeps: the programs are attached while it runs.
  "$jcs" run bench -- /bin/sh -c 'touch /data/up; sleep 600' >/dev/null 2>&1 &
  busy=$!
  while [ ! -e "$JCS_HOME/persist/bench/data/up" ]; do sleep 0.05; done
  for l in $loops; do rec busy $l "$(host $l "$n")"; done
  kill "$busy"; wait "$busy" 2>/dev/null || true
  rm -f "$JCS_HOME/persist/bench/data/up"
  for l in $loops; do rec ve-off $l "$(JCS_MONITOR=off ve $l "$n")"; done
  d=$(cat "$JCS_HOME/daemon.pid")
  c0=$(awk '{print $14 + $15}' "/proc/$d/stat")
  for l in write openclose; do rec ve-rec $l "$(ve $l "$n")"; done
  rec ve-rec getppid "$(ve getppid "$n")"
  c1=$(awk '{print $14 + $15}' "/proc/$d/stat")
  echo "daemon-ticks $(( c1 - c0 )) $(( 3 * n ))" >> "$out" # write: 1 event per call; openclose: 2
  daemon_stop
  # auditd with its own configuration and log, stopped afterwards.
  mkdir -p "$work/audit"
  cat > "$work/audit/auditd.conf" <<CONF
log_file = $work/audit/audit.log
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 1024
max_log_file_action = ROTATE
num_logs = 2
disk_full_action = SUSPEND
disk_error_action = SUSPEND
space_left = 75
space_left_action = SYSLOG
admin_space_left = 50
admin_space_left_action = SUSPEND
q_depth = 2000
CONF
  chmod 600 "$work/audit/auditd.conf"
  auditd -n -c "$work/audit" >"$work/audit/auditd.out" 2>&1 </dev/null &
  auditd_pid=$!
  sleep 0.5
  auditctl -b 8192 >/dev/null
  auditctl -e 1 >/dev/null
  auditctl -a always,exit -F arch=b64 -S write -S openat -S close -k jcsbench
  for l in $loops; do rec auditd $l "$(host $l "$slow")"; done
  auditctl -d always,exit -F arch=b64 -S write -S openat -S close -k jcsbench
  auditctl -e 0 >/dev/null
  kill "$auditd_pid" 2>/dev/null || { echo "auditd exited early:" >&2; cat "$work/audit/auditd.out" >&2; }; wait "$auditd_pid" 2>/dev/null || true; auditd_pid=""
  for l in $loops; do rec strace $l "$(strace -f -qq -o "$work/strace.out" "$loop" $l "$slow" "$(target $l "$work/f" "$shm")")"; done
  # bpftrace finds tracepoints through tracefs: mounted in a private mount namespace of its own.
  unshare -m --propagation private sh -c 'mount -t tracefs nodev /sys/kernel/tracing &&
    exec bpftrace -e "tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }"' > "$work/bpftrace.out" 2>&1 &
  bt=$!
  for _ in $(seq 100); do grep -q Attaching "$work/bpftrace.out" && break; sleep 0.1; done
  grep -q Attaching "$work/bpftrace.out" || { echo "bpftrace did not attach:" >&2; cat "$work/bpftrace.out" >&2; exit 1; }
  sleep 0.5
  for l in $loops; do rec bpftrace $l "$(host $l "$n")"; done
  kill -INT "$bt" 2>/dev/null || true; wait "$bt" 2>/dev/null || true
done
# The VE runs recorded the calls: one write transaction per write, open and close per iteration.
"$jcs" run bench -- true >/dev/null
stats=$("$jcs" stats --json)
python3 - "$out" "$n" "$rounds" "$stats" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith("daemon-ticks")]
ticks = [l.split()[1:] for l in open(sys.argv[1]) if l.startswith("daemon-ticks")]
import os
hz = os.sysconf("SC_CLK_TCK")
daemon_ns = statistics.median(int(t) / hz * 1e9 / int(e) for t, e in ticks)
n, rounds = int(sys.argv[2]), int(sys.argv[3])
st = json.loads(sys.argv[4])
med = {}
for cfg, loop, v in rows:
    med.setdefault((cfg, loop), []).append(float(v))
med = {k: statistics.median(v) for k, v in med.items()}
order = ["none", "monitor", "busy", "ve-off", "ve-rec", "auditd", "strace", "bpftrace"]
what = {
    "none": "no tracing", "monitor": "host process, JCS daemon idle (no VE)",
    "busy": "host process while a VE runs (programs attached)",
    "ve-off": "inside a VE, not recorded", "ve-rec": "inside a VE, recorded (JCS)",
    "auditd": "auditd, rules for write/openat/close", "strace": "strace -f",
    "bpftrace": "bpftrace, count per cgroup",
}
print(f"{n} iterations per loop ({n // 10} under auditd and strace), medians of {rounds} rounds\n")
print("| configuration | write(1 B) ns | × none | open+close ns | × none | getppid ns | × none |")
print("|---|---|---|---|---|---|---|")
for c in order:
    cells = []
    for l in ("write", "openclose", "getppid"):
        v, b = med[(c, l)], med[("none", l)]
        cells.append(f"{v:.0f} ({v - b:+.0f}) | {v / b:.2f}")
    print(f"| {what[c]} | " + " | ".join(cells) + " |")
w = med[("ve-rec", "write")] - med[("ve-off", "write")]
o = (med[("ve-rec", "openclose")] - med[("ve-off", "openclose")]) / 2
print(f"\nrecording inside a VE: +{w:.0f} ns per recorded write, +{o:.0f} ns per recorded open or close"
      f" (against the same VE unrecorded); outside any VE while a VE runs: +{med[('busy', 'write')] - med[('none', 'write')]:.0f} ns"
      f" per write, +{(med[('busy', 'openclose')] - med[('none', 'openclose')]) / 2:.0f} ns per open or close,"
      f" {med[('busy', 'getppid')] - med[('none', 'getppid')]:+.0f} ns per getppid (the filter alone);"
      f" with the daemon idle: {med[('monitor', 'getppid')] - med[('none', 'getppid')]:+.0f} ns per getppid")
print(f"daemon CPU (user + system) per recorded event: {daemon_ns:.0f} ns; "
      f"end to end: {w + daemon_ns:.0f} ns per recorded write")
writes = sum(v["by_op"].get("write", 0) for v in st["ves"])
opens = sum(v["by_op"].get("open", 0) for v in st["ves"])
lost = sum(v["records_lost"] for v in st["ves"])
print(f"journal: {writes:,} write and {opens:,} open transactions recorded "
      f"(expected ≥ {rounds * n:,} each), {lost} records lost, "
      f"{st['journal_bytes_per_transaction']:.1f} bytes per transaction")
PY
