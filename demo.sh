#!/usr/bin/env bash
# The main job of JCS as it stands: build a template and an app with persistent and shared
# storage, run a VE that writes inside and outside its persistent storage, and print the
# VE's integrity report. Uses its own store (default /var/lib/jcs-demo, or $JCS_HOME).
set -euo pipefail
cd "$(dirname "$0")"
jcs=./target/release/jcs
cargo build --release --locked --quiet
export JCS_HOME="${JCS_HOME:-/var/lib/jcs-demo}"
# Its daemon meets no other store's (the host's daemon would take this store, and the demo
# stops its daemon at the end).
export JCS_RUN_DIR="$JCS_HOME/run"
rm -rf "$JCS_HOME"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
run $jcs doctor
run $jcs template create base --busybox
run $jcs app create notes --template base --persist /root/notes --share /root/Downloads=downloads
say "jcs run notes --id-file ID -- /bin/sh -c '...'   # a VE that writes where it may and where it must not"
idf=$(mktemp -u /tmp/jcs-demo-id.XXXXXX)
$jcs run notes --id-file "$idf" -- /bin/sh -c '
  echo "buy milk" > /root/notes/todo.txt              # persistent storage: kept for the app
  echo "quarterly numbers" > /root/Downloads/q3.txt    # shared storage: other apps see it
  printf "#!/bin/sh\necho totally ps\n" > /bin/ps       # a trojan outside persistent storage
  chmod 4755 /bin/ps
  echo "owned" >> /etc/motd
  rm /usr/bin/wget
  echo "VE $(hostname) done"'
run $jcs ps --all
id=$(cat "$idf")
rm -f "$idf"
run $jcs inspect "$id"
say "ls $JCS_HOME/ve/$id/dirties/bin   # the trojan is in the VE's dirties; the template is pristine"
ls -l "$JCS_HOME/ve/$id/dirties/bin"
ls -l "$JCS_HOME/templates/base/1/bin"
say "jcs log --ve $id   # what the eBPF monitor recorded: transactions on variables"
$jcs log --ve "$id" | grep -vE ' (close|exit|fork) ' | head -30
run $jcs stats
run $jcs verify
run $jcs report "$id" --html "$JCS_HOME/report-$id.html"
say "open $JCS_HOME/report-$id.html in a browser: the VE's timeline, integrity report and graphs"
# The monitor daemon (started by the first jcs run) would keep running as the host's monitor;
# the demo stops it so that it leaves nothing behind.
kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
