#!/usr/bin/env python3
"""Turns bench/paper/run.sh's results (JSON lines, one per workload) into the Figure 3 and
Figure 4 tables of docs/benchmarks.md, and, with --plot DIR and matplotlib installed, their
plots. Usage: table.py RESULTS.jsonl [--plot DIR]"""
import json
import sys


def load(path):
    rows = []
    for n, line in enumerate(open(path), 1):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            sys.exit(f"table.py: {path}:{n}: not JSON: {e}")
    need = ["workload", "seconds", "host_set", "ve_set", "jcs_transactions", "jcs_not_recorded",
            "audit_events", "audit_bytes", "journal_bytes", "startup_ve_set", "startup_transactions"]
    for r in rows:
        missing = [k for k in need if k not in r]
        if missing:
            sys.exit(f"table.py: {path}: workload {r.get('workload', '?')} lacks {', '.join(missing)}")
    return rows


def ratio(a, b):
    return f"{a / b:.1f}×" if b else "—"


def tables(rows):
    out = ["Figure 3: events per workload (the Taser-like 65-system-call set)", "",
           "| workload | s | whole host | in the VE | JCS transactions | JCS saw, not recorded | host ÷ JCS | VE ÷ JCS | T1 | T2 | auditd events | auditd bytes | JCS journal bytes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t1, t2 = (f"{r[k]:,}" if isinstance(r.get(k), int) else "pending" for k in ("t1", "t2"))
        out.append(f"| {r['workload']} | {r['seconds']:g} | {r['host_set']:,} | {r['ve_set']:,} | "
                   f"{r['jcs_transactions']:,} | {r['jcs_not_recorded']:,} | "
                   f"{ratio(r['host_set'], r['jcs_transactions'])} | {ratio(r['ve_set'], r['jcs_transactions'])} | "
                   f"{t1} | {t2} | {r['audit_events']:,} | {r['audit_bytes']:,} | {r['journal_bytes']:,} |")
    out += ["", "Figure 4: start-up", "",
            "| workload | start-up events in the VE | JCS transactions for start-up |", "|---|---|---|"]
    for r in rows:
        out.append(f"| {r['workload']} | {r['startup_ve_set']:,} | {r['startup_transactions']:,} |")
    others = [(r["workload"], o) for r in rows for o in r.get("others", [])]
    if others:
        out += ["", "The workloads' other VEs (drivers, servers): counted in the whole host, not in the "
                "workload's VE", "", "| workload | VE | events in that VE | its JCS transactions |",
                "|---|---|---|---|"]
        for w, o in others:
            out.append(f"| {w} | {o['what']} | {o['ve_set']:,} | {o['transactions']:,} |")
    return "\n".join(out)


def plot(rows, d):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("table.py: matplotlib is not installed: no plots", file=sys.stderr)
        return
    names = [r["workload"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    w = 0.27
    ax.bar([i - w for i in x], [r["host_set"] for r in rows], w, label="whole host (65 calls)")
    ax.bar(list(x), [r["ve_set"] for r in rows], w, label="in the VE (65 calls)")
    ax.bar([i + w for i in x], [r["jcs_transactions"] for r in rows], w, label="JCS transactions")
    ax.set_yscale("log")
    ax.set_xticks(list(x), names, rotation=15)
    ax.set_ylabel("events")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(f"{d}/figure3.png")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar([i - 0.2 for i in x], [r["startup_ve_set"] for r in rows], 0.4, label="start-up events in the VE (65 calls)")
    ax.bar([i + 0.2 for i in x], [r["startup_transactions"] for r in rows], 0.4, label="JCS transactions for start-up")
    ax.set_xticks(list(x), names, rotation=15)
    ax.set_ylabel("events")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(f"{d}/figure4.png")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    print(tables(rows))
    if "--plot" in sys.argv:
        plot(rows, sys.argv[sys.argv.index("--plot") + 1])
