#!/usr/bin/env bash
# Journal write throughput and size: the same synthetic stream of atomic transactions into the
# JCS journal and into SQLite (WAL, NORMAL and FULL), in one run.
#   bench/journal.sh [EVENTS]    (default 2000000; writes under a temporary directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${1:-2000000}
work=$(mktemp -d /tmp/jcs-bench-journal.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$here/.."
cargo build --release --quiet --example journal_bench
echo "journal bench, $(date -u '+%Y-%m-%d %H:%M') UTC, $(uname -n), kernel $(uname -r), $(nproc) CPUs, $(df -T "$work" | awk 'NR==2{print $2}') on $(df "$work" | awk 'NR==2{print $1}')"
echo
./target/release/examples/journal_bench "$n" "$work"
