"""Spot policies on the shared Can't Be Late traces, in the paper's setting: 48 h of work,
deadlines 52/70/92 h, restart overheads 0.02/0.1/0.4 h, $3.06 on-demand, $0.9731 spot (or the
trace's own prices), single-zone (each file) and multi-zone (each folder). Prints mean and p95
cost ratio, miss rate and mean gap to the omniscient optimum per policy, and for each setting
whether spotrain's gap is at most half of uniform-progress's.

The spotrain policy was developed on ``availability/`` only; ``preemption/`` is held out and
reported separately as well, so the figures show whether it carries over to unseen traces.

    python -m benchmarks.spot_policy [--traces ../shared/data/spot-traces] [--starts 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from spotrain.jobs import sweep, traces

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ("on-demand", "greedy", "uniform-progress", "eager-next-region", "spotrain", "optimal")


def table(rows: list[list], header: list[str]) -> str:
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*["-" * w for w in widths])] + [fmt.format(*r) for r in cols[1:]]
    )


def report(title: str, summary: list[dict]) -> list[dict]:
    print(f"\n## {title}")
    by = {(s["policy"], s["deadline_hours"], s["overhead_hours"]): s for s in summary}
    settings = sorted({(s["deadline_hours"], s["overhead_hours"]) for s in summary})
    checks = []
    rows = []
    for d, oh in settings:
        for p in POLICIES:
            s = by.get((p, d, oh))
            if s is None:
                continue
            gap = "-" if s["mean_gap_to_optimal"] is None else f"{s['mean_gap_to_optimal']:.3f}"
            rows.append(
                [
                    f"{d:g}",
                    f"{oh:g}",
                    p,
                    s["runs"],
                    f"{s['mean_cost_ratio']:.3f}",
                    f"{s['p95_cost_ratio']:.3f}",
                    f"{s['miss_rate']:.3f}",
                    gap,
                ]
            )
        up, ours = (
            by[("uniform-progress", d, oh)]["mean_gap_to_optimal"],
            by[("spotrain", d, oh)]["mean_gap_to_optimal"],
        )
        checks.append(
            {
                "deadline_hours": d,
                "overhead_hours": oh,
                "spotrain_gap": ours,
                "uniform_progress_gap": up,
                "half_of_up": ours <= up / 2,
            }
        )
    print(
        table(
            rows,
            [
                "deadline h",
                "overhead h",
                "policy",
                "runs",
                "mean ratio",
                "p95 ratio",
                "miss rate",
                "gap to opt",
            ],
        )
    )
    print("\nspotrain gap vs uniform-progress gap (goal: at most half)")
    print(
        table(
            [
                [
                    f"{c['deadline_hours']:g}",
                    f"{c['overhead_hours']:g}",
                    f"{c['spotrain_gap']:.3f}",
                    f"{c['uniform_progress_gap']:.3f}",
                    f"{c['spotrain_gap'] / c['uniform_progress_gap']:.2f}"
                    if c["uniform_progress_gap"]
                    else "-",
                    "yes" if c["half_of_up"] else "NO",
                ]
                for c in checks
            ],
            ["deadline h", "overhead h", "spotrain", "UP", "ratio", "≤ ½"],
        )
    )
    misses = [
        s
        for s in summary
        if s["policy"] in ("on-demand", "greedy", "uniform-progress", "spotrain", "optimal")
        and s["miss_rate"] > 0
    ]
    print(
        "deadline-safe policies with misses: "
        + (", ".join(f"{s['policy']}@{s['deadline_hours']:g}h" for s in misses) or "none")
    )
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "data" / "spot-traces")
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, help="also write every summary here")
    a = ap.parse_args()
    if not a.traces.exists():
        raise SystemExit(f"{a.traces}: no traces (needs ../shared/data/spot-traces)")
    grid = sweep.Grid(policies=POLICIES, starts=a.starts, seed=a.seed)
    out = {}
    t0 = time.perf_counter()
    for multi in (False, True):
        scns = traces.load_scenarios(a.traces, multi_zone=multi)
        runs = sweep.run(scns, grid, workers=a.workers)
        kind = "multi-zone" if multi else "single-zone"
        out[kind] = {"all": sweep.summarize(runs)}
        print(
            f"\n# {kind}: {len(scns)} scenarios × {a.starts} starts × 3 overheads × 3 deadlines "
            f"({time.perf_counter() - t0:.0f} s so far)"
        )
        out[kind]["checks_all"] = report(f"{kind}, all traces", out[kind]["all"])
        for part in ("availability", "preemption"):
            sub = [r for r in runs if r["scenario"].startswith(part)]
            if sub:
                out[kind][part] = sweep.summarize(sub)
                out[kind][f"checks_{part}"] = report(
                    f"{kind}, {part}/ only"
                    + (" (held out)" if part == "preemption" else " (development set)"),
                    out[kind][part],
                )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s, {a.workers} worker(s)")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
