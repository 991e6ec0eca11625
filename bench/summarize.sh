#!/usr/bin/env bash
# Records and bytes each summarization tier keeps, and `jcs track` latency, on synthetic
# journals (crates/jcs/examples/synth_journal.rs) and on a workload recorded in a real VE.
#   bench/summarize.sh [EVENTS...]   (default 100000 1000000; the real workload needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(100000 1000000)
(cd "$repo" && cargo build --release --quiet --bin jcs --example synth_journal)
jcs="$repo/target/release/jcs"
work=$(mktemp -d /tmp/jcs-bench-summarize.XXXXXX)
trap '[ -f "$work/real/daemon.pid" ] && kill "$(cat "$work/real/daemon.pid")" 2>/dev/null; sleep 0.2; rm -rf "$work"' EXIT
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
for n in "${sizes[@]}"; do
  export JCS_HOME="$work/s$n" JCS_RUN_DIR="$work/s$n/run"
  "$repo/target/release/examples/synth_journal" "$n" "$JCS_HOME" 2>/dev/null
  echo "### synthetic journal, $n transactions"
  echo
  echo '```'
  "$jcs" summarize --dry-run
  echo '```'
  echo
  echo "| jcs track | ms |"
  echo "|---|---|"
  echo "| back file:/data/f5 | $(ms "$jcs" track back file:/data/f5 --json) |"
  echo "| back file:/data/f5 --tier T1 | $(ms "$jcs" track back file:/data/f5 --tier T1 --json) |"
  echo "| back file:/data/f5 --tier T2 | $(ms "$jcs" track back file:/data/f5 --tier T2 --json) |"
  echo "| forward endpoint:tcp/10.9.0.1:443 | $(ms "$jcs" track forward endpoint:tcp/10.9.0.1:443 --json) |"
  echo
done
if [ "$(id -u)" = 0 ]; then
  export JCS_HOME="$work/real"
  "$jcs" template create bb --busybox >/dev/null
  "$jcs" app create w --template bb --persist /data --share /dl=dl >/dev/null
  # A VE that builds a small "site" from inputs, another that reads and reports on it.
  "$jcs" run w -- /bin/sh -c 'i=0; while [ $i -lt 200 ]; do echo "line $i" >> /data/in; i=$((i+1)); done;
    for k in 1 2 3 4 5 6 7 8 9 10; do cat /data/in > /dl/page$k; md5sum /dl/page$k >> /data/sums; done' >/dev/null
  "$jcs" run w -- /bin/sh -c 'for k in 1 2 3 4 5 6 7 8 9 10; do wc -l /dl/page$k; done > /data/report; cat /data/sums >> /data/report' >/dev/null
  echo "### recorded in real VEs (busybox: appends, copies, checksums, a report)"
  echo
  echo '```'
  "$jcs" summarize --dry-run
  echo '```'
fi
