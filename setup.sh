#!/usr/bin/env bash
# Set up JCS on a fresh Debian 12 machine (as root): install the Debian packages the build,
# the tests and the benchmarks need, build the release binary, and run the demo.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (JCS creates namespaces, mounts and cgroups)" >&2
  exit 1
fi
./scripts/install-deps.sh --all
echo "== building the release binary"
cargo build --release --locked
echo "== demo"
./demo.sh
