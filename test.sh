#!/usr/bin/env bash
# The whole test suite: unit tests and the privileged integration tests (real VEs: namespaces,
# overlay mounts, cgroups). Runs as root; installs the few Debian packages the tests use.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the privileged tests need root" >&2
  exit 1
fi
./scripts/install-deps.sh
# Where pip put nats-server (scripts/install-deps.sh).
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH
# Every test binary runs even when one fails: a failure does not hide the others' results.
JCS_REQUIRE_ROOT=1 cargo test --workspace --locked --no-fail-fast
