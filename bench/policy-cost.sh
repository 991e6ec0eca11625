#!/usr/bin/env bash
# What enforcing a policy costs per call, side by side in one run, inside recorded VEs of the
# same app with each mechanism off and on (docs/policy.md):
#   none        the app has no policy
#   net-allow   network rules (cgroup sock_addr programs), the call allowed after the rule loop
#   net-deny    the same, the call denied (EPERM, counted in the kernel, an aborted transaction)
#   landlock    an exec allow-list (Landlock): open+close and fork+exec under the ruleset
# Loops (bench/src/policy-loop.c): connect() of a UDP socket to 127.0.0.1 (the connect4 hook
# runs on each), open+close of a file, fork+exec+wait of a static program, getppid (no hook:
# the policy's cost on everything else). The table shows medians over the rounds and the
# ratio to `none`.
#   bench/policy-cost.sh [N] [ROUNDS]   (default 200000 3; exec runs N/200 times; needs root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
n=${1:-200000}
rounds=${2:-3}
jcs="$repo/target/release/jcs"
command -v gcc >/dev/null || { echo "policy-cost.sh: gcc is missing" >&2; exit 1; }
(cd "$repo" && cargo build --release --quiet)
work=$(mktemp -d /tmp/jcs-bench-policy.XXXXXX)
export JCS_HOME="$work/store" JCS_RUN_DIR="$work/store/run"
cleanup() {
  [ -f "$JCS_HOME/daemon.pid" ] && kill "$(cat "$JCS_HOME/daemon.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -static -o "$work/policy-loop" "$here/src/policy-loop.c"
"$jcs" template create bb --busybox >/dev/null
mkapp() { "$jcs" app create "$1" --template bb --persist /data >/dev/null; cp "$work/policy-loop" "$JCS_HOME/persist/$1/data/"; }
mkapp none
mkapp net
mkapp landlock
cat > "$work/net.toml" <<'TOML'
[[network.rule]]
name = "deny-9"
action = "deny"
ports = [9]
[[network.rule]]
action = "deny"
to = ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]
[[network.rule]]
action = "deny"
proto = "tcp"
ports = ["25", "465-587"]
TOML
printf '[exec]\nallow = ["/bin", "/data"]\n' > "$work/landlock.toml"
"$jcs" app policy net "$work/net.toml" >/dev/null
"$jcs" app policy landlock "$work/landlock.toml" >/dev/null
out="$work/results"
: > "$out"
run() { "$jcs" run "$1" -- /data/policy-loop "$2" "$3" "$4"; }
ex=$(( n / 200 ))
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  for app in none net landlock; do
    echo "$app connect-allowed $(run "$app" connect "$n" 5353)" >> "$out"
    echo "$app openclose $(run "$app" openclose "$n" /data/policy-loop)" >> "$out"
    echo "$app exec $(run "$app" exec "$ex" /data/policy-loop)" >> "$out"
    echo "$app getppid $(run "$app" getppid "$n" -)" >> "$out"
  done
  echo "net connect-denied $(run net connect "$n" 9)" >> "$out"
done
stats=$("$jcs" stats --json)
python3 - "$out" "$n" "$rounds" "$stats" <<'PY'
import json, statistics, sys
med = {}
for l in open(sys.argv[1]):
    app, loop, v = l.split()
    med.setdefault((app, loop), []).append(float(v))
med = {k: statistics.median(v) for k, v in med.items()}
n, rounds = int(sys.argv[2]), int(sys.argv[3])
print(f"{n} iterations per loop ({n // 200} for exec), medians of {rounds} rounds, inside recorded VEs\n")
print("| policy | connect ns | × none | open+close ns | × none | fork+exec µs | × none | getppid ns | × none |")
print("|---|---|---|---|---|---|---|---|---|")
names = {"none": "none", "net": "3 network rules (sock_addr)", "landlock": "exec allow-list (Landlock)"}
for app in ("none", "net", "landlock"):
    cells = []
    for loop, unit in (("connect-allowed", 1), ("openclose", 1), ("exec", 1000), ("getppid", 1)):
        v, b = med[(app, loop)], med[("none", loop)]
        cells.append(f"{v / unit:.{1 if unit > 1 else 0}f} | {v / b:.2f}")
    print(f"| {names[app]} | " + " | ".join(cells) + " |")
d, b = med[("net", "connect-denied")], med[("none", "connect-allowed")]
print(f"\na denied connect: {d:.0f} ns ({d / b:.2f}× an allowed one without a policy): EPERM, "
      f"the kernel's count, and an aborted transaction")
st = json.loads(sys.argv[4])
counted = sum((r.get("counted") or 0) for v in st["ves"] for r in v["denials"])
recorded = sum(r["recorded"] for v in st["ves"] for r in v["denials"])
lost = sum(v["records_lost"] for v in st["ves"])
print(f"denials: {counted:,} counted in the kernel (expected {rounds * n:,}), {recorded:,} aborted "
      f"transactions in the journal, {lost:,} records lost (each loss is a gap)")
PY
