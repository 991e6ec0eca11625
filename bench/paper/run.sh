#!/usr/bin/env bash
# Reproduces the seed paper's Figures 3 and 4 with today's applications in VEs:
# per workload, in the same run, the whole-host events of the Taser-like 65-system-call set
# (bench/paper/syscalls.txt, counted by an eBPF counter and by auditd), the same set inside
# the VE (JCS's per-VE counters), the atomic transactions JCS recorded and what it saw but
# did not need to record, the start-up events against JCS's start-up transactions, T1 and T2
# sizes, and bytes on disk (auditd's log against JCS's journal). A workload's other VEs (the
# LibreOffice driver, the site's server while Chromium browses) are reported apart.
#
# Workloads: apache (a request per second for 300 s, --quick 60 s), sshd (log in with a key,
# page apache2.conf with more through a pty), libreoffice (Python-UNO: open a ~200 KB and a
# ~55 KB document, copy the second to the end of the first, save), browse (Chromium headless
# follows every link of the site's home page and back, over DevTools), chromium (10 starts),
# sqlite (a deterministic script).
#
# Background while measuring (the whole-host number means nothing without it): this machine's
# own processes, plus one VE of another app idling (sleep).
#
#   bench/paper/run.sh [--quick] [--only W1,W2,...] [--keep] [--peers]
#     --only   run only these workloads (names above)
#     --keep   keep the workloads' stores (their journals) for a look with jcs log/stats/track
#     --peers  then re-run the peer comparisons in the same session: bench/syscall-cost.sh
#              (per system call), bench/nginx.sh (nginx under wrk), bench/ve-start.sh (bwrap,
#              runc, firejail, systemd-nspawn, unshare)
#   needs root, bpftrace, auditd, curl (scripts/install-deps.sh --all); the first run builds
#   the template and apps (bench/paper/build.sh, a few minutes).
# Writes bench/results/paper-DATE.jsonl (with --only: paper-DATE-W1-W2.jsonl; with --quick:
# …-quick.jsonl; with --peers also paper-DATE-peers.txt) and prints the tables
# (bench/paper/table.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$(dirname "$here")")
secs=300
all="apache sshd libreoffice browse chromium sqlite"
only=$all
peers=""
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) secs=60 ;;
    --only) only=$(echo "${2:?--only needs a list: $all}" | tr , ' '); shift ;;
    --peers) peers=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for w in $only; do
  case " $all " in *" $w "*) ;; *) echo "run.sh: no workload $w (there are: $all)" >&2; exit 2 ;; esac
done
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
bt=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$bt" ] && kill -INT "$bt" 2>/dev/null || true
  auditctl -D -k jcspaper >/dev/null 2>&1 || true
  [ -n "$auditd_pid" ] && kill "$auditd_pid" 2>/dev/null || true
  for d in "$work"/*/daemon.pid; do [ -f "$d" ] && kill "$(cat "$d")" 2>/dev/null || true; done
  sleep 0.5
  ip netns del "$ns" 2>/dev/null || true
  if [ -n "$keep" ]; then echo "run.sh: the stores are kept in $work" >&2; else rm -rf "$work"; fi
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
  kill -INT "$bt"; wait "$bt" 2>/dev/null || true; bt=""
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
# OTHERS: the workload's other VEs (drivers, servers), as "what=VE ..."; reported apart.
row() { # NAME SECONDS VE "host ev by" JOURNAL_BYTES STARTUP_VE [AUDIT_LOST [OTHERS]]
  local st sum
  st=$("$jcs" stats --json)
  sum=$("$jcs" summarize --dry-run --json)
  python3 - "$1" "$2" "$3" "$4" "$5" "$6" "$st" "$sum" "$names" "${7:-0}" "${8:-}" <<'PY' >> "$results"
import json, sys
name, secs, ve, counters, jbytes, sve, st, sm, names, alost, others = sys.argv[1:]
host, ev, by = map(int, counters.split())
st, sm, names = json.loads(st), json.loads(sm), set(names.split())
ves = {v["ve"]: v for v in st["ves"]}
def in_set(v):
    return sum(n for k, n in v["syscalls_by_name"].items() if k in names)
v, s = ves[int(ve)], ves[int(sve)]
# What the recorder wrote for the VE: its transactions, and the T1 summaries of a daemon that
# summarized online (JCS_SUMMARIZE=online), which stand for transactions.
def recorded(v):
    return v["transactions"] + v.get("summaries", 0)
tiers = {r["tier"]: r["records"] for r in sm["tiers"]}
print(json.dumps({
    "workload": name, "seconds": float(secs), "host_set": host, "ve_set": in_set(v),
    "jcs_transactions": recorded(v), "jcs_not_recorded": v["dropped_by_classification"],
    "audit_events": ev, "audit_bytes": by, "journal_bytes": int(jbytes),
    "startup_ve_set": in_set(s), "startup_transactions": recorded(s),
    "t1": tiers.get("T1"), "t2": tiers.get("T2"), "audit_lost": int(alost),
    "others": [{"what": w, "ve_set": in_set(ves[int(o)]), "transactions": recorded(ves[int(o)])}
               for w, o in (x.split("=") for x in others.split())],
}))
PY
}

export JCS_BRIDGE_CIDR=10.81.0.0/24
secs_since() { python3 -c "print(round(($(date +%s%N) - $1) / 1e9, 1))"; }
chrome='chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --disable-back-forward-cache --disable-dev-shm-usage'
apache_start='. /etc/apache2/envvars; mkdir -p $APACHE_RUN_DIR $APACHE_LOCK_DIR $APACHE_LOG_DIR'
# An idle VE of another app, in the background (started before the counters).
idle_ve() { # APP SECONDS
  local n
  n=$(ves)
  # (Background jobs run nsenter itself, not the in_ns function: $! must be jcs run's pid.)
  nsenter --net="/run/netns/$ns" "$jcs" run "$1" -- sleep "$2" >/dev/null 2>&1 & pids+=($!)
  new_ve "$n" >/dev/null
}
end_pids() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
# Stops the workload's daemon: a monitor left loaded would tax every system call of the host
# in the workloads and peer measurements that follow (each loaded monitor is two programs on
# the system-call tracepoints).
stop_daemon() {
  local p
  [ -f "$JCS_HOME/daemon.pid" ] || return 0
  p=$(cat "$JCS_HOME/daemon.pid")
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
  echo "run.sh: the daemon of $JCS_HOME (pid $p) did not stop" >&2
  exit 1
}
# The host pid of a VE's init: the child of its `jcs run` (waits for it).
ve_init() { # JCS_RUN_PID
  local p=""
  for _ in $(seq 100); do p=$(pgrep -P "$1" | head -1) && [ -n "$p" ] && break; sleep 0.05; done
  echo "$p"
}

# A workload's own copy of the base store, its bridge and its daemon up (a first `jcs run APP`).
workload_store() { # WORKLOAD APP
  export JCS_HOME="$work/$1"
  copy_base "$JCS_HOME"
  in_ns "$jcs" run "$2" -- true >/dev/null
}
# The measured part of a workload: journal bytes, the counters, the clock.
measure_begin() { # WORKLOAD
  j0=$(journal_bytes)
  counters_start "$work/c-$1"
  s0=$(date +%s%N)
}
measure_end() { # WORKLOAD → took (s), jbytes, alost, and c (counters_stop)
  took=$(secs_since "$s0")
  counters_stop "$work/c-$1"
  jbytes=$(( $(journal_bytes) - j0 ))
  alost=$(cat "$work/c-$1/audit-lost")
}
# A VE that only starts the application (Figure 4); prints its id.
startup_ve() { # APP -- CMD...
  local n
  n=$(ves)
  in_ns "$jcs" run "$@" >/dev/null 2>"$work/startup.err" ||
    { echo "run.sh: the start-up VE of $1 failed:" >&2; cat "$work/startup.err" >&2; exit 1; }
  new_ve "$n"
}
chrome_once="rm -rf /root/profile1; $chrome --user-data-dir=/root/profile1 --dump-dom about:blank >/dev/null 2>&1"

# --- apache: a client outside the VE fetches the home page once a second.
wl_apache() {
  workload_store apache apache
  idle_ve sqlite $((secs + 30))
  local n ve web sve
  measure_begin apache
  n=$(ves)
  nsenter --net="/run/netns/$ns" "$jcs" run apache -- /bin/sh -c "$apache_start; exec apache2 -D FOREGROUND" >/dev/null 2>&1 & web=$!; pids+=($web)
  ve=$(new_ve "$n")
  for _ in $(seq 100); do in_ns curl -s -o /dev/null "http://10.81.0.$((ve + 1))/" && break; sleep 0.1; done
  for _ in $(seq "$secs"); do in_ns curl -s -o /dev/null "http://10.81.0.$((ve + 1))/"; sleep 1; done
  kill "$web"; wait "$web" 2>/dev/null || true
  measure_end apache
  # Start-up alone: start, answer once on loopback, stop.
  sve=$(startup_ve apache -- /bin/bash -c "$apache_start; apache2 -k start; for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null && break; sleep 0.05; done; apache2 -k stop")
  row apache "$secs" "$ve" "$c" "$jbytes" "$sve" "$alost"
  end_pids
  stop_daemon
}

# --- sshd: a client outside the VE logs in with a key and pages the Apache configuration
# with `more` through a pseudo-terminal.
wl_sshd() {
  workload_store sshd sshd
  ssh-keygen -q -t ed25519 -N '' -f "$work/key"
  mkdir -p "$JCS_HOME/persist/sshd/root_.ssh"
  install -m 600 "$work/key.pub" "$JCS_HOME/persist/sshd/root_.ssh/authorized_keys"
  idle_ve sqlite 600
  local n ve srv sve up=""
  n=$(ves)
  nsenter --net="/run/netns/$ns" "$jcs" run sshd -- /bin/sh -c 'mkdir -p /run/sshd; exec /usr/sbin/sshd -D -e' >/dev/null 2>&1 & srv=$!; pids+=($srv)
  ve=$(new_ve "$n")
  ssh_to() { # FLAG COMMAND...
    local flag=$1; shift
    in_ns ssh -i "$work/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o LogLevel=ERROR -o ConnectTimeout=2 "$flag" "root@10.81.0.$((ve + 1))" "$@"
  }
  for _ in $(seq 50); do ssh_to -n true 2>/dev/null && up=1 && break; sleep 0.2; done
  [ -n "$up" ] || { echo "run.sh: cannot log in to the sshd VE" >&2; exit 1; }
  measure_begin sshd
  { yes ' ' | head -n 400; echo q; } | ssh_to -tt more /etc/apache2/apache2.conf > "$work/more.out" 2>&1 || true
  grep -q "main Apache server configuration" "$work/more.out" || { echo "run.sh: the ssh session did not page the file" >&2; exit 1; }
  measure_end sshd
  end_pids
  sve=$(startup_ve sshd -- /bin/bash -c 'mkdir -p /run/sshd; /usr/sbin/sshd; for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null && break; sleep 0.05; done; kill $(cat /run/sshd.pid)')
  row sshd "$took" "$ve" "$c" "$jbytes" "$sve" "$alost"
  stop_daemon
}

# --- libreoffice: LibreOffice listens for UNO in its VE; the driver (bench/paper/office.py
# edit) runs in a VE of its own and opens the two documents of the app's persistent storage,
# copies the references to the end of the report, closes them, saves, and ends LibreOffice.
wl_libreoffice() {
  workload_store libreoffice libreoffice
  cp "$here/office.py" "$JCS_HOME/persist/libreoffice/data/office.py" # this checkout's driver
  idle_ve sqlite 600
  local n ve office drv sve
  measure_begin libreoffice
  n=$(ves)
  nsenter --net="/run/netns/$ns" "$jcs" run libreoffice -- soffice --headless --norestore '--accept=socket,host=0.0.0.0,port=2002;urp;' >/dev/null 2>&1 & office=$!; pids+=($office)
  ve=$(new_ve "$n")
  n=$(ves)
  in_ns "$jcs" run libreoffice -- python3 /data/office.py edit "10.81.0.$((ve + 1))" 2002 /data > "$work/office.out"
  drv=$(new_ve "$n")
  wait "$office" || { echo "run.sh: LibreOffice did not end cleanly" >&2; exit 1; }
  measure_end libreoffice
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))
assert r["report_bytes_after"] > r["report_bytes_before"] + 40000, r' "$work/office.out" ||
    { echo "run.sh: the report did not grow by the references: $(cat "$work/office.out")" >&2; exit 1; }
  end_pids
  sve=$(startup_ve libreoffice -- soffice --headless --norestore --terminate_after_init)
  row libreoffice "$took" "$ve" "$c" "$jbytes" "$sve" "$alost" "driver=$drv"
  stop_daemon
}

# --- browse: Chromium headless loads the site's home page (served by an apache VE), follows
# every first-level link and returns, driven over DevTools by bench/paper/browse.py. Chromium
# listens for DevTools on its VE's loopback only (new headless ignores
# --remote-debugging-address): the driver runs on the host, in the VE's network namespace
# (not in its cgroup or mount namespace), and its traffic is loopback, not recorded.
wl_browse() {
  workload_store browse chromium
  local n ve web site chr init sve
  n=$(ves)
  nsenter --net="/run/netns/$ns" "$jcs" run apache -- /bin/sh -c "$apache_start; exec apache2 -D FOREGROUND" >/dev/null 2>&1 & web=$!; pids+=($web)
  site=$(new_ve "$n")
  for _ in $(seq 100); do in_ns curl -s -o /dev/null "http://10.81.0.$((site + 1))/" && break; sleep 0.1; done
  measure_begin browse
  n=$(ves)
  nsenter --net="/run/netns/$ns" "$jcs" run chromium -- /bin/sh -c "rm -rf /root/browse; exec $chrome --user-data-dir=/root/browse --remote-debugging-port=9222 http://10.81.0.$((site + 1))/" >/dev/null 2>&1 & chr=$!; pids+=($chr)
  ve=$(new_ve "$n")
  init=$(ve_init "$chr")
  nsenter --net="/proc/$init/ns/net" python3 "$here/browse.py" 127.0.0.1 9222 > "$work/browse.out" ||
    { echo "run.sh: the browsing driver failed" >&2; exit 1; }
  wait "$chr" || true # Browser.close ends it
  measure_end browse
  grep -q '"links_followed": 24' "$work/browse.out" || { echo "run.sh: browsing followed $(cat "$work/browse.out")" >&2; exit 1; }
  end_pids
  sve=$(startup_ve chromium -- /bin/sh -c "$chrome_once")
  row browse "$took" "$ve" "$c" "$jbytes" "$sve" "$alost" "site=$site"
  stop_daemon
}

# --- chromium: started 10 times (the paper's Firefox start-up experiment), headless, a fresh
# profile in persistent storage.
wl_chromium() {
  workload_store chromium chromium
  idle_ve sqlite 600
  local n ve sve
  measure_begin chromium
  n=$(ves)
  in_ns "$jcs" run chromium -- /bin/sh -c "rm -rf /root/profile; for i in 1 2 3 4 5 6 7 8 9 10; do $chrome --user-data-dir=/root/profile --dump-dom about:blank >/dev/null 2>&1 || exit 1; done" >/dev/null
  ve=$(new_ve "$n")
  measure_end chromium
  end_pids
  sve=$(startup_ve chromium -- /bin/sh -c "$chrome_once")
  row chromium-10-starts "$took" "$ve" "$c" "$jbytes" "$sve" "$alost"
  stop_daemon
}

# --- sqlite: the deterministic script, then the interpreter's start-up alone.
wl_sqlite() {
  workload_store sqlite sqlite
  idle_ve apache 600
  local n ve sve
  measure_begin sqlite
  n=$(ves)
  in_ns "$jcs" run sqlite -- python3 /data/bench.py >/dev/null
  ve=$(new_ve "$n")
  measure_end sqlite
  end_pids
  sve=$(startup_ve sqlite -- python3 -c 'import sqlite3')
  row sqlite "$took" "$ve" "$c" "$jbytes" "$sve" "$alost"
  stop_daemon
}

stamp=$(date -u +%Y-%m-%d)
for w in $only; do
  echo "run.sh: $w ($(date -u +%H:%M:%S))" >&2
  "wl_$w"
done
# (A partial or quick run does not replace the day's full one.)
suffix=""
[ "$only" = "$all" ] || suffix="-$(echo $only | tr ' ' -)"
[ "$secs" = 300 ] || suffix="$suffix-quick"
out="$repo/bench/results/paper-$stamp$suffix.jsonl"
cp "$results" "$out"
python3 "$here/table.py" "$out"
echo "(rows: $out)"

if [ -n "$peers" ]; then
  # The peer comparisons, in the same session (each script stops what it started).
  peers_out="$repo/bench/results/paper-$stamp-peers.txt"
  {
    echo "# bench/paper/run.sh --peers, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs"
    echo; echo "## bench/syscall-cost.sh 200000 3"; "$repo/bench/syscall-cost.sh" 200000 3
    echo; echo "## bench/nginx.sh 8 3"; "$repo/bench/nginx.sh" 8 3
    echo; echo "## bench/ve-start.sh --runs 20"; "$repo/bench/ve-start.sh" --runs 20 --out "$work/ve-start.md"
  } 2>&1 | tee "$peers_out"
  echo "(peers: $peers_out)"
fi
