#!/usr/bin/env bash
# What each tier keeps of real journals and what it answers: for each store given (the paper
# workloads' stores that `bench/paper/run.sh --keep` leaves), the records of T0, T1, T1F and T2
# (`jcs summarize --dry-run`), and for every variable the journal's transactions name (files by
# identity, flows, endpoints, VEs; at most --max per store), `jcs track back` and `forward`
# (over the whole journal, and up to / from the middle of the run) from the transactions (the
# oracle), then with --tier T1, T1F and T2: how many questions each
# tier answers with more variables than the oracle (it never answers with fewer: checked), and
# how many variables it adds in all.
#
#   bench/tiers.sh [--max N] STORE_DIR...
#   e.g. bench/tiers.sh /var/tmp/jcs-paper-run.*/{apache,sshd,sqlite,chromium,libreoffice}
# Needs root (the stores are root's); builds the release binary (JCS_BIN=PATH: use that one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
max=60
if [ "${1:-}" = "--max" ]; then max=$2; shift 2; fi
[ $# -gt 0 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
jcs="${JCS_BIN:-$repo/target/release/jcs}"
[ -n "${JCS_BIN:-}" ] || (cd "$repo" && cargo build --release --quiet)
python3 - "$jcs" "$max" "$@" <<'PY'
import json, subprocess, sys
jcs, cap, stores = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def run(home, *args):
    o = subprocess.run([jcs, "--home", home, *args], capture_output=True, text=True)
    if o.returncode != 0:
        raise SystemExit(f"jcs {' '.join(args)} ({home}): {o.stderr.strip()}")
    return o.stdout

print("| store | T0 flows | T1 | T1F | T2 | questions | T1 wider | T1F wider (vars added) | T2 wider (vars added) |")
print("|---|---|---|---|---|---|---|---|---|")
for home in stores:
    tiers = {r["tier"]: r["records"] for r in json.loads(run(home, "summarize", "--dry-run", "--json", "--tier", "T1", "--tier", "T1F", "--tier", "T2"))["tiers"]}
    names, times = [], []
    for line in run(home, "log", "--json").splitlines():
        a = json.loads(line)
        if "op" not in a:
            continue
        times.append(a["time_ns"])
        for side in ("src", "dst"):
            v = a.get(side + "_id") or a.get(side)
            if v and v != "-" and not v.startswith("host:") and v not in names:
                names.append(v)
    names = names[:cap]
    q, wider = 0, {"T1": [0, 0], "T1F": [0, 0], "T2": [0, 0]}
    for v in names:
        # Over the whole journal, and from (forward) or up to (back) the middle of the run,
        # where time windows and byte ranges decide more.
        mid = str(sorted(times)[len(times) // 2] // 1_000_000_000) if times else None
        for d, when in (("back", []), ("forward", []), ("back", ["--at", mid]), ("forward", ["--from", mid])):
            if when and mid is None:
                continue
            try:
                exact = set(json.loads(run(home, "track", d, v, *when, "--json"))["reached"])
                answers = {t: set(json.loads(run(home, "track", d, v, *when, "--tier", t, "--json"))["reached"])
                           for t in wider}
            except SystemExit:
                continue  # a name the resolver finds ambiguous (or undefined): skipped
            q += 1
            for t in wider:
                got = answers[t]
                if not exact <= got:
                    raise SystemExit(f"{home}: {t} lost {exact - got} for {d} {v}")
                if got != exact:
                    wider[t][0] += 1
                    wider[t][1] += len(got - exact)
    name = home.rstrip("/").split("/")[-1]
    print(f"| {name} | {tiers.get('T0', 0):,} | {tiers.get('T1', 0):,} | {tiers.get('T1F', 0):,} | {tiers.get('T2', 0):,} | {q} | "
          f"{wider['T1'][0]} | {wider['T1F'][0]} ({wider['T1F'][1]}) | {wider['T2'][0]} ({wider['T2'][1]}) |")
PY
