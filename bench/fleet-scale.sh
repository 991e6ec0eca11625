#!/usr/bin/env bash
# `jcs track --fleet` as the fleet's tables grow, against `jcs track` on the host's own journal
# (through its segment indexes), on synthetic journals of many VEs that keep mostly to
# themselves (crates/jcs/examples/sparse_journal.rs: 2,000 transactions per VE; every 100th VE
# reads a shared file): a typical answer reaches a few thousand transactions however large
# the journal. Each journal is shipped to one NATS server and collected into ClickHouse
# (Debian's 18.16, this machine); the answers are compared variable for variable.
#
#   bench/fleet-scale.sh [EVENTS...]    default: 1000000 10000000
# Needs root (a daemon indexes the host's sealed segments), nats-server and clickhouse-server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000)
. "$here/lib/fleet.sh"
need_servers
(cd "$repo" && cargo build --release --quiet --bin jcs && cargo build --release --quiet -p jcs --example sparse_journal)
jcs="$repo/target/release/jcs"
fleet_workdir /var/tmp/jcs-fleet-scale.XXXXXX
one_of_each
# Median wall time in ms of 3 runs (output of the last in $tmp/out).
ms() {
  local t=()
  for _ in 1 2 3; do
    local s e
    s=$(date +%s%N); "$@" > "$tmp/out" 2>/dev/null; e=$(date +%s%N)
    t+=($(( (e - s) / 1000000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p
}
secs() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000000 )); }
echo "date: $(date -u +%FT%TZ); host: $(hostname); $(nproc) cores"
echo
echo "| transactions | ship s | collect s | question | host (indexed) ms | --fleet ms | same answer |"
echo "|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  home="$tmp/s$n"
  "$repo/target/release/examples/sparse_journal" "$n" "$home" 2>/dev/null
  JCS_HOME="$home" JCS_RUN_DIR="$home/run" "$jcs" daemon > "$tmp/daemon.log" 2>&1 & d=$!
  for _ in $(seq 1 6000); do [ -S "$home/daemon.sock" ] && break; sleep 0.1; done
  kill "$d"; wait "$d" 2>/dev/null || true
  ch="$ch_base/s$n"
  ship_s=$(secs "$jcs" --home "$home" ship --to "$url" --replicas 1 --host sparse)
  collect_s=$(secs "$jcs" collect --from "$url" --host sparse --to "$tmp/c$n" --to "$ch")
  ves=$(( (n + 1999) / 2000 )); mid=$(( ves / 2 > 0 ? ves / 2 : 1 )); hundred=$(( ves >= 100 ? 100 : 1 ))
  for q in "back file:/data/v$mid/f3" "forward endpoint:tcp/10.0.$(( mid / 256 )).$(( mid % 256 )):443" "back file:/data/v$hundred/f1"; do
    # shellcheck disable=SC2086
    a=$(JCS_HOME="$home" ms "$jcs" track $q --json); cp "$tmp/out" "$tmp/a"
    # shellcheck disable=SC2086
    b=$(ms "$jcs" track $q --json --fleet "$ch" --host sparse); cp "$tmp/out" "$tmp/b"
    same=$(same_reached "$tmp/a" "$tmp/b" sparse)
    echo "| $n | $ship_s | $collect_s | \`track $q\` | $a | $b | $same |"
  done
  rm -rf "$home" "$tmp/c$n"
done
