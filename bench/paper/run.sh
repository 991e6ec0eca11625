#!/usr/bin/env bash
# Reproduces the seed paper's Figures 3 and 4 for the workloads built so far (apache, sshd,
# chromium started 10 times, sqlite):
# per workload, in the same run, the whole-host events of the Taser-like 65-system-call set
# (bench/paper/syscalls.txt, counted by an eBPF counter and by auditd), the same set inside
# the VE (JCS's per-VE counters), the atomic transactions JCS recorded and what it saw but
# did not need to record, the start-up events against JCS's start-up transactions, T1 and T2
# sizes, and bytes on disk (auditd's log against JCS's journal).
#
# Background while measuring (the whole-host number means nothing without it): this machine's
# own processes, plus one VE of the other app idling (sleep).
#
#   bench/paper/run.sh [--quick]   (apache: a request per second for 300 s, --quick 60 s;
#                                   needs root, bpftrace, auditd, curl: scripts/install-deps.sh --all)
# Writes bench/results/paper-DATE.jsonl and prints the tables (bench/paper/table.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$(dirname "$here")")
secs=300
[ "${1:-}" = --quick ] && secs=60
for t in bpftrace auditd auditctl ausyscall curl python3 ssh ssh-keygen; do
  command -v "$t" >/dev/null || { echo "run.sh: $t is missing (scripts/install-deps.sh --all)" >&2; exit 1; }
done
(cd "$repo" && cargo build --release --quiet)
jcs="$repo/target/release/jcs"
base=${JCS_PAPER_BASE:-/var/tmp/jcs-paper/base}
"$here/build.sh" "$base"
work=$(mktemp -d /var/tmp/jcs-paper-run.XXXXXX)
ns="jcs-paper-$$"
results="$work/results.jsonl"
pids=()
auditd_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  auditctl -D -k jcspaper >/dev/null 2>&1 || true
  [ -n "$auditd_pid" ] && kill "$auditd_pid" 2>/dev/null || true
  for d in "$work"/*/daemon.pid; do [ -f "$d" ] && kill "$(cat "$d")" 2>/dev/null || true; done
  sleep 0.5
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
in_ns ip link set lo up
names=$(cat "$here/syscalls.txt")
# Numbers of the set on this machine (a name this architecture lacks is left out and said).
nums=()
# audit's names for pread64/pwrite64.
audit_name() { case "$1" in pread64) echo pread ;; pwrite64) echo pwrite ;; *) echo "$1" ;; esac; }
for n in $names; do
  x=$(ausyscall --dump | awk -v n="$(audit_name "$n")" '$2 == n {print $1}')
  if [ -n "$x" ]; then
    nums+=("$x")
  else
    echo "run.sh: no $n on $(uname -m)" >&2
  fi
done
begin=$(for x in "${nums[@]}"; do printf '@want[%s] = 1; ' "$x"; done)

counters_start() { # DIR
  mkdir -p "$1/audit"
  # eBPF: every task of the host, the 65 calls; tracefs in a private mount namespace.
  unshare -m --propagation private sh -c "mount -t tracefs nodev /sys/kernel/tracing &&
    exec bpftrace -e 'BEGIN { $begin } tracepoint:raw_syscalls:sys_enter /@want[args->id]/ { @host = count(); } END { clear(@want); }'" \
    > "$1/bpftrace.out" 2>&1 &
  bt=$!
  for _ in $(seq 100); do grep -q Attaching "$1/bpftrace.out" && break; sleep 0.1; done
  printf 'log_file = %s\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 4096\nmax_log_file_action = IGNORE\nspace_left = 75\nadmin_space_left = 50\ndisk_full_action = SUSPEND\ndisk_error_action = SUSPEND\nq_depth = 20000\n' \
    "$1/audit/audit.log" > "$1/audit/auditd.conf"
  chmod 600 "$1/audit/auditd.conf"
  auditd -n -c "$1/audit" >/dev/null 2>&1 </dev/null &
  auditd_pid=$!
  sleep 0.5
  auditctl -b 65536 >/dev/null
  auditctl -e 1 >/dev/null
  local rule=(-a always,exit -F arch=b64)
  for n in $names; do
    a=$(audit_name "$n")
    ausyscall "$a" >/dev/null 2>&1 && rule+=(-S "$a")
  done
  auditctl "${rule[@]}" -k jcspaper
  lost0=$(auditctl -s | awk '$1 == "lost" {print $2}')
}

counters_stop() { # DIR → sets c="host audit_events audit_bytes" (not in a subshell: it waits)
  auditctl -D -k jcspaper >/dev/null
  auditctl -e 0 >/dev/null
  lost1=$(auditctl -s | awk '$1 == "lost" {print $2}')
  echo "$(( lost1 - lost0 ))" > "$1/audit-lost"
  kill "$auditd_pid"; wait "$auditd_pid" 2>/dev/null || true; auditd_pid=""
  kill -INT "$bt"; wait "$bt" 2>/dev/null || true
  local host ev by
  host=$(awk '/^@host:/ {print $2}' "$1/bpftrace.out")
  [ -n "$host" ] || { echo "run.sh: bpftrace counted nothing:" >&2; cat "$1/bpftrace.out" >&2; exit 1; }
  ev=$(grep -c 'type=SYSCALL' "$1/audit/audit.log" || true)
  by=$(stat -c %s "$1/audit/audit.log")
  c="$host ${ev:-0} ${by:-0}"
}

# The id of the next VE to appear after `ves_now` VEs exist (waits for it).
ves() { ls "$JCS_HOME/ve" 2>/dev/null | wc -l; }
new_ve() { # COUNT_BEFORE
  for _ in $(seq 200); do [ "$(ves)" -gt "$1" ] && break; sleep 0.05; done
  ls "$JCS_HOME/ve" | sort -n | tail -1
}

# A copy of the base store for one workload, with its own store id (cgroup names carry it).
copy_base() { # DIR
  cp -a "$base" "$1"
  # The workload's own journal: not the maintenance VEs' that built the apps.
  rm -rf "$1/daemon.pid" "$1/daemon.sock" "$1/journal"
  python3 -c 'import sqlite3, sys, uuid
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE meta SET value = ? WHERE key = ?", (uuid.uuid4().hex[:8], "store_id"))
c.commit()' "$1/catalog.db"
}

journal_bytes() { du -cb "$JCS_HOME"/journal/*.seg 2>/dev/null | tail -1 | cut -f1; }

# One row: workload, seconds, the VE's id (its stats), the counters' output, the startup VE.
row() { # NAME SECONDS VE "host ev by" JOURNAL_BYTES STARTUP_VE [AUDIT_LOST]
  local st sum
  st=$("$jcs" stats --json)
  sum=$("$jcs" summarize --dry-run --json)
  python3 - "$1" "$2" "$3" "$4" "$5" "$6" "$st" "$sum" "$names" "${7:-0}" <<'PY' >> "$results"
import json, sys
name, secs, ve, counters, jbytes, sve, st, sm, names, alost = sys.argv[1:]
host, ev, by = map(int, counters.split())
st, sm, names = json.loads(st), json.loads(sm), set(names.split())
ves = {v["ve"]: v for v in st["ves"]}
def in_set(v):
    return sum(n for k, n in v["syscalls_by_name"].items() if k in names)
v, s = ves[int(ve)], ves[int(sve)]
tiers = {r["tier"]: r["records"] for r in sm}
print(json.dumps({
    "workload": name, "seconds": float(secs), "host_set": host, "ve_set": in_set(v),
    "jcs_transactions": v["transactions"], "jcs_not_recorded": v["dropped_by_classification"],
    "audit_events": ev, "audit_bytes": by, "journal_bytes": int(jbytes),
    "startup_ve_set": in_set(s), "startup_transactions": s["transactions"],
    "t1": tiers.get("T1"), "t2": tiers.get("T2"), "audit_lost": int(alost),
}))
PY
}

# --- apache: a client outside the VE fetches the home page once a second.
export JCS_HOME="$work/apache" JCS_BRIDGE_CIDR=10.81.0.0/24
copy_base "$JCS_HOME"
in_ns "$jcs" run apache -- true >/dev/null # the bridge and the daemon
n=$(ves)
# (Background jobs run nsenter itself, not the in_ns function: $! must be jcs run's pid.)
nsenter --net="/run/netns/$ns" "$jcs" run sqlite -- sleep $((secs + 30)) >/dev/null 2>&1 & pids+=($!) # background
new_ve "$n" >/dev/null
start='. /etc/apache2/envvars; mkdir -p $APACHE_RUN_DIR $APACHE_LOCK_DIR $APACHE_LOG_DIR'
j0=$(journal_bytes)
counters_start "$work/c-apache"
n=$(ves)
nsenter --net="/run/netns/$ns" "$jcs" run apache -- /bin/sh -c "$start; exec apache2 -D FOREGROUND" >/dev/null 2>&1 & web=$!; pids+=($web)
ve=$(new_ve "$n")
for _ in $(seq 100); do in_ns curl -s -o /dev/null "http://10.81.0.$((ve + 1))/" && break; sleep 0.1; done
for _ in $(seq "$secs"); do in_ns curl -s -o /dev/null "http://10.81.0.$((ve + 1))/"; sleep 1; done
kill "$web"; wait "$web" 2>/dev/null || true
counters_stop "$work/c-apache"
j1=$(journal_bytes)
# Start-up alone: start, answer once on loopback, stop.
n=$(ves)
in_ns "$jcs" run apache -- /bin/bash -c "$start; apache2 -k start; for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null && break; sleep 0.05; done; apache2 -k stop" >/dev/null 2>&1
sve=$(new_ve "$n")
row apache "$secs" "$ve" "$c" $((j1 - j0)) "$sve" "$(cat "$work/c-apache/audit-lost")"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()

# --- sshd: a client outside the VE logs in with a key and pages the Apache configuration
# with `more` through a pseudo-terminal.
export JCS_HOME="$work/sshd"
copy_base "$JCS_HOME"
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
mkdir -p "$JCS_HOME/persist/sshd/root_.ssh"
install -m 600 "$work/key.pub" "$JCS_HOME/persist/sshd/root_.ssh/authorized_keys"
in_ns "$jcs" run sshd -- true >/dev/null
n=$(ves)
nsenter --net="/run/netns/$ns" "$jcs" run sqlite -- sleep 600 >/dev/null 2>&1 & idle=$!; pids+=($idle) # background
new_ve "$n" >/dev/null
n=$(ves)
nsenter --net="/run/netns/$ns" "$jcs" run sshd -- /bin/sh -c 'mkdir -p /run/sshd; exec /usr/sbin/sshd -D -e' >/dev/null 2>&1 & srv=$!; pids+=($srv)
ve=$(new_ve "$n")
ssh_to() { # FLAG COMMAND...
  local flag=$1; shift
  in_ns ssh -i "$work/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=2 "$flag" "root@10.81.0.$((ve + 1))" "$@"
}
up=""
for _ in $(seq 50); do ssh_to -n true 2>/dev/null && up=1 && break; sleep 0.2; done
[ -n "$up" ] || { echo "run.sh: cannot log in to the sshd VE" >&2; exit 1; }
j0=$(journal_bytes)
counters_start "$work/c-sshd"
s0=$(date +%s%N)
{ yes ' ' | head -n 400; echo q; } | ssh_to -tt more /etc/apache2/apache2.conf > "$work/more.out" 2>&1 || true
grep -q "main Apache server configuration" "$work/more.out" || { echo "run.sh: the ssh session did not page the file" >&2; exit 1; }
s1=$(date +%s%N)
counters_stop "$work/c-sshd"
kill "$srv"; wait "$srv" 2>/dev/null || true
kill "$idle"; wait "$idle" 2>/dev/null || true
pids=()
j1=$(journal_bytes)
n=$(ves)
in_ns "$jcs" run sshd -- /bin/bash -c 'mkdir -p /run/sshd; /usr/sbin/sshd; for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null && break; sleep 0.05; done; kill $(cat /run/sshd.pid)' >/dev/null 2>&1
sve=$(new_ve "$n")
row sshd "$(python3 -c "print(round(($s1 - $s0) / 1e9, 1))")" "$ve" "$c" $((j1 - j0)) "$sve" "$(cat "$work/c-sshd/audit-lost")"

# --- chromium: started 10 times (the paper's Firefox start-up experiment), headless, with the
# flags this machine's closed network needs, a fresh profile in persistent storage.
export JCS_HOME="$work/chromium"
copy_base "$JCS_HOME"
"$jcs" run chromium -- true >/dev/null
chrome='chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --disable-back-forward-cache --disable-dev-shm-usage'
j0=$(journal_bytes)
counters_start "$work/c-chromium"
s0=$(date +%s%N)
n=$(ves)
"$jcs" run chromium -- /bin/sh -c "rm -rf /root/profile; for i in 1 2 3 4 5 6 7 8 9 10; do $chrome --user-data-dir=/root/profile --dump-dom about:blank >/dev/null 2>&1 || exit 1; done" >/dev/null
ve=$(new_ve "$n")
s1=$(date +%s%N)
counters_stop "$work/c-chromium"
j1=$(journal_bytes)
n=$(ves)
"$jcs" run chromium -- /bin/sh -c "rm -rf /root/profile1; $chrome --user-data-dir=/root/profile1 --dump-dom about:blank >/dev/null 2>&1" >/dev/null
sve=$(new_ve "$n")
row chromium-10-starts "$(python3 -c "print(round(($s1 - $s0) / 1e9, 1))")" "$ve" "$c" $((j1 - j0)) "$sve" "$(cat "$work/c-chromium/audit-lost")"

# --- sqlite: the deterministic script, then the interpreter's start-up alone.
export JCS_HOME="$work/sqlite"
copy_base "$JCS_HOME"
"$jcs" run sqlite -- true >/dev/null
n=$(ves)
"$jcs" run apache -- sleep 600 >/dev/null 2>&1 & idle=$!; pids+=($idle) # background
new_ve "$n" >/dev/null
j0=$(journal_bytes)
counters_start "$work/c-sqlite"
s0=$(date +%s%N)
n=$(ves)
"$jcs" run sqlite -- python3 /data/bench.py >/dev/null
ve=$(new_ve "$n")
s1=$(date +%s%N)
counters_stop "$work/c-sqlite"
j1=$(journal_bytes)
n=$(ves)
"$jcs" run sqlite -- python3 -c 'import sqlite3' >/dev/null
sve=$(new_ve "$n")
kill "$idle" 2>/dev/null || true
row sqlite "$(python3 -c "print(round(($s1 - $s0) / 1e9, 1))")" "$ve" "$c" $((j1 - j0)) "$sve" "$(cat "$work/c-sqlite/audit-lost")"

out="$repo/bench/results/paper-$(date -u +%Y-%m-%d).jsonl"
cp "$results" "$out"
python3 "$here/table.py" "$out"
echo "(rows: $out)"
