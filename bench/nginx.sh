#!/usr/bin/env bash
# nginx inside a VE under wrk (the client outside the VE, on the host side of the VE bridge,
# in a network namespace this script creates), with recording and with JCS_MONITOR=off,
# alternating, in the same run. Reports requests/s, the ratio, and the transactions recorded
# per request.
#   bench/nginx.sh [SECONDS] [ROUNDS]   (default 10 3; needs root, nginx and wrk:
#                                        scripts/install-deps.sh --all)
#   JCS_BIN=PATH bench/nginx.sh …       that jcs binary instead of this tree's release build
#                                        (another build, to compare)
#   JCS_BPF_STATS=1 bench/nginx.sh …     also the tracing programs' run time per request
#                                        (kernel.bpf_stats_enabled: costs time itself)
# With recording, the daemon's CPU per request is reported too (its threads' schedstat).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
secs=${1:-10}
rounds=${2:-3}
jcs="${JCS_BIN:-$repo/target/release/jcs}"
for t in nginx wrk busybox python3; do
  command -v "$t" >/dev/null || { echo "nginx.sh: $t is missing (scripts/install-deps.sh --all)" >&2; exit 1; }
done
[ -n "${JCS_BIN:-}" ] || (cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-nginx.XXXXXX)
ns="jcs-bench-nginx-$$"
export JCS_HOME="$work/store" JCS_BRIDGE_CIDR=10.79.0.0/24 JCS_RUN_DIR="$work/store/run"
ve_pid=""
cleanup() {
  [ -n "$ve_pid" ] && kill "$ve_pid" 2>/dev/null && wait "$ve_pid" 2>/dev/null || true
  [ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
  sleep 0.3
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
in_ns ip link set lo up

# A template with nginx and what it links against, busybox for a shell, a site of 25 pages.
tpl="$work/tpl"
mkdir -p "$tpl"/{bin,etc,run,tmp,var/www,var/log/nginx,var/lib/nginx,usr/sbin}
cp "$(command -v busybox)" "$tpl/bin/busybox"
for a in sh ip cat sleep; do ln -s busybox "$tpl/bin/$a"; done
cp /usr/sbin/nginx "$tpl/usr/sbin/nginx"
for lib in $(ldd /usr/sbin/nginx | grep -o '/[^ ]*'); do
  mkdir -p "$tpl$(dirname "$lib")"; cp -L "$lib" "$tpl$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$tpl/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$tpl/etc/group"
cat > "$tpl/etc/nginx.conf" <<'CONF'
user nobody nogroup;
worker_processes 1;
daemon off;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events { worker_connections 1024; }
http {
  default_type text/html;
  access_log /var/log/nginx/access.log;
  sendfile on;
  keepalive_requests 1000000;
  server { listen 80; root /var/www; }
}
CONF
python3 - "$tpl/var/www" <<'PY'
import sys
root = sys.argv[1]
links = "".join(f'<li><a href="p{i}.html">page {i}</a></li>' for i in range(1, 25))
open(f"{root}/index.html", "w").write(f"<html><body><h1>home</h1><ul>{links}</ul>{'<p>text</p>' * 200}</body></html>")
for i in range(1, 25):
    open(f"{root}/p{i}.html", "w").write(f"<html><body><h1>page {i}</h1>{'<p>more text</p>' * 300}</body></html>")
PY
"$jcs" template create ngx --from-dir "$tpl" >/dev/null
"$jcs" app create web --template ngx --net bridge --persist /data >/dev/null

out="$work/results"
: > "$out"
cpu="$work/cpu"
: > "$cpu"
. "$here/lib/daemon.sh"
serve() { # MODE: on | off
  rm -f "$JCS_HOME/persist/web/data/addr"
  local env=()
  [ "$1" = off ] && env=(JCS_MONITOR=off)
  env "${env[@]}" nsenter --net="/run/netns/$ns" "$jcs" run web -- /bin/sh -c \
    'ip -4 -o addr show eth0 > /data/addr; exec /usr/sbin/nginx -c /etc/nginx.conf' \
    > "$work/ve.out" 2>&1 &
  ve_pid=$!
  for _ in $(seq 100); do [ -s "$JCS_HOME/persist/web/data/addr" ] && break; sleep 0.1; done
  addr=$(grep -o 'inet [0-9.]*' "$JCS_HOME/persist/web/data/addr" | cut -d' ' -f2)
  for _ in $(seq 100); do in_ns busybox wget -q -O /dev/null "http://$addr/" 2>/dev/null && break; sleep 0.1; done
}
stop() { kill "$ve_pid"; wait "$ve_pid" 2>/dev/null || true; ve_pid=""; }
for r in $(seq "$rounds"); do
  for mode in off on; do
    echo "round $r/$rounds: recording $mode" >&2
    serve "$mode"
    if [ "$mode" = on ]; then
      d=$(cat "$JCS_HOME/daemon.pid")
      [ -n "${JCS_BPF_STATS:-}" ] && sysctl -q kernel.bpf_stats_enabled=1
      c0=$(daemon_cpu_ns "$d"); b0=$(bpf_run_ns "$d")
    fi
    rps=$(in_ns wrk -t1 -c16 -d"${secs}s" "http://$addr/" | awk '/Requests\/sec/ {print $2}')
    echo "$mode $rps" >> "$out"
    if [ "$mode" = on ]; then
      c1=$(daemon_cpu_ns "$d"); b1=$(bpf_run_ns "$d")
      sysctl -q kernel.bpf_stats_enabled=0
      echo "$rps $(( c1 - c0 )) $(( b1 - b0 ))" >> "$cpu"
    fi
    stop
  done
done
"$jcs" run web -- true >/dev/null 2>&1 || true
stats=$("$jcs" stats --json)
python3 - "$out" "$secs" "$rounds" "$stats" "$cpu" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
secs, rounds = int(sys.argv[2]), int(sys.argv[3])
st = json.loads(sys.argv[4])
rps = {m: statistics.median(float(v) for k, v in rows if k == m) for m in ("off", "on")}
print(f"wrk -t1 -c16 -d{secs}s against nginx in a VE (--net bridge), medians of {rounds} rounds\n")
print("| nginx in a VE | requests/s | × unrecorded |")
print("|---|---|---|")
print(f"| JCS_MONITOR=off | {rps['off']:,.0f} | 1.00 |")
print(f"| recorded | {rps['on']:,.0f} | {rps['on'] / rps['off']:.3f} |")
rec = [v for v in st["ves"] if v["transactions"] > 1000]
ats = sum(v["transactions"] for v in rec)
reqs = sum(float(v) for k, v in rows if k == "on") * secs
lost = sum(v["records_lost"] for v in rec)
ops = {}
for v in rec:
    for k, n in v["by_op"].items():
        ops[k] = ops.get(k, 0) + n
top = ", ".join(f"{k} {n / reqs:.2f}" for k, n in sorted(ops.items(), key=lambda x: -x[1])[:6])
print(f"\nrecorded: {ats / reqs:.2f} transactions per request ({top}), {lost} records lost, "
      f"{st['journal_bytes_per_transaction']:.1f} journal bytes per transaction")
cpu = [[float(x) for x in l.split()] for l in open(sys.argv[5])]
per = lambda k: statistics.median(c[k] / (c[0] * secs) for c in cpu)
line = f"per request, recorded: the daemon's CPU {per(1) / 1000:.2f} µs"
if any(c[2] for c in cpu):
    line += f", the tracing programs' run time {per(2) / 1000:.2f} µs (bpf_stats on)"
print(line + f"; a request takes {1e6 / rps['off']:.1f} µs unrecorded, {1e6 / rps['on']:.1f} recorded")
PY
