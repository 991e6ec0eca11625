# What the VE-start benchmarks share (sourced by bench/ve-start.sh, bench/ve-start-options.sh,
# bench/ve-start-storage.sh). Set NAME (the script's name, for messages) and REPO first.

# need_root_and TOOL...: exits with a message unless run as root with every TOOL installed.
need_root_and() {
  [ "$(id -u)" = 0 ] || { echo "$NAME: needs root" >&2; exit 1; }
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$NAME: $t is missing (run ./setup.sh)" >&2; exit 1; }
  done
}

# release_jcs: the release build's path, built first when missing.
release_jcs() {
  [ -x "$REPO/target/release/jcs" ] || (cd "$REPO" && cargo build --release --quiet)
  echo "$REPO/target/release/jcs"
}

# stop_store_daemon STORE: stops the daemon jcs run started for STORE (before it is removed).
stop_store_daemon() {
  if [ -f "$1/daemon.pid" ] && kill "$(cat "$1/daemon.pid")" 2>/dev/null; then sleep 0.3; fi
}
