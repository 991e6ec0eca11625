#!/usr/bin/env bash
# Fleet tracking and exports on synthetic journals (crates/jcs/examples/synth_journal.rs:
# 8 VEs, 64 files of which every fourth is shared, 8 endpoints): the journal is shipped
# (`jcs ship`, one NATS server) and collected into ClickHouse (Debian's 18.16); then
# `jcs track --fleet` (ClickHouse scans + the local engine) against `jcs track` on the host's
# own journal (read through its segment indexes), the same questions, and `jcs export` in
# each format.
#
#   bench/fleet.sh [EVENTS...]    default: 1000000
# Needs nats-server and clickhouse-server (scripts/install-deps.sh); builds the release binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000)
. "$here/lib/fleet.sh"
need_servers
(cd "$repo" && cargo build --release --quiet --bin jcs && cargo build --release --quiet -p jcs --example synth_journal)
jcs="$repo/target/release/jcs"
fleet_workdir /tmp/jcs-fleet-bench.XXXXXX
one_of_each
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
echo "date: $(date -u +%FT%TZ); host: $(hostname); $(nproc) cores"
for n in "${sizes[@]}"; do
  home="$tmp/s$n"
  "$repo/target/release/examples/synth_journal" "$n" "$home" >/dev/null 2>&1
  ch="$ch_base/s$n"
  ship_ms=$(ms "$jcs" --home "$home" ship --to "$url" --replicas 1 --host synth)
  collect_ms=$(ms "$jcs" collect --from "$url" --host synth --to "$tmp/c$n" --to "$ch")
  echo
  echo "### $n transactions: shipped in $ship_ms ms, collected into ClickHouse in $collect_ms ms"
  echo
  echo "| question | jcs track (host, indexed) ms | jcs track --fleet ms | same answer |"
  echo "|---|---|---|---|"
  for q in "back file:/data/f5" "back file:/data/f5 --at 1795000000.05" "forward endpoint:tcp/10.9.0.1:443 --from 1795000000.09" "back ve:3"; do
    # shellcheck disable=SC2086
    l=$(ms "$jcs" --home "$home" track $q --json)
    # shellcheck disable=SC2086
    f=$(ms "$jcs" track $q --json --fleet "$ch" --host synth)
    # shellcheck disable=SC2086
    "$jcs" --home "$home" track $q --json > "$tmp/local.json"
    # shellcheck disable=SC2086
    "$jcs" track $q --json --fleet "$ch" --host synth > "$tmp/fleet.json"
    same=$(same_reached "$tmp/local.json" "$tmp/fleet.json" synth)
    echo "| \`$q\` | $l | $f | $same |"
  done
  echo
  echo "| jcs export --format | ms | transactions/s | MB |"
  echo "|---|---|---|---|"
  for f in jsonl csv parquet cdm; do
    t=$(ms "$jcs" --home "$home" export --format "$f" -o "$tmp/x.$f")
    mb=$(python3 -c "import os; print(f'{os.path.getsize(\"$tmp/x.$f\")/1e6:.1f}')")
    echo "| $f | $t | $(python3 -c "print(f'{$n / max($t, 1) * 1000:,.0f}')") | $mb |"
    rm -f "$tmp/x.$f"
  done
  rm -rf "$home" "$tmp/c$n"
done
