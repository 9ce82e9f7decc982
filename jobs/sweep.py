"""Policies × scenarios × start offsets × settings: the runs behind ``spotrain simulate`` and
``benchmarks/spot_policy.py``, and their summary.

Each (scenario, start, overhead) replays one timeline: the omniscient optimum is solved once for
it and every deadline, then every policy runs once per deadline. Start offsets are drawn with a
seeded generator, so a sweep is reproducible; ``workers`` > 1 spreads timelines over processes
without changing any result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from . import traces
from .policies import REGISTRY, make
from .policies import optimal as opt
from .simulator import simulate


@dataclass(frozen=True)
class Grid:
    policies: tuple[str, ...]
    work_h: float = 48.0
    deadlines_h: tuple[float, ...] = (52.0, 70.0, 92.0)
    overheads_h: tuple[float, ...] = (0.02, 0.1, 0.4)
    od_price: float = 3.06
    spot_price: float = 0.9731
    checkpoint_h: float | None = None
    nodes: int = 1
    starts: int = 50
    seed: int = 0
    trace_prices: bool = True
    start_ticks: tuple[int, ...] | None = (
        None  # exactly these start offsets in every scenario (instead of ``starts``)
    )


def start_offsets(
    scn: traces.Scenario, starts: int, seed: int, ticks: tuple[int, ...] | None = None
) -> list[int]:
    """Seeded start ticks, the same for every policy and setting of a scenario — or ``ticks``,
    exactly (so an independent simulator can be compared run by run)."""
    if ticks is not None:
        bad = [t for t in ticks if not 0 <= t < scn.ticks]
        if bad:
            from spotrain.errors import SpotrainError

            raise SpotrainError(
                f"--start-ticks {bad[0]}: scenario {scn.name} has ticks 0..{scn.ticks - 1} — give ticks "
                "inside every trace"
            )
        return list(ticks)
    key = sum(ord(c) * 31**i for i, c in enumerate(scn.name)) % (2**31)
    rng = np.random.default_rng([seed, key])
    return [int(x) for x in rng.integers(0, scn.ticks, size=starts)]


def _one(args) -> list[dict]:
    scn, grid, start, overhead = args
    s = traces.Setting(
        work_h=grid.work_h,
        overhead_h=overhead,
        od_price=grid.od_price,
        spot_price=grid.spot_price,
        checkpoint_h=grid.checkpoint_h,
        nodes=grid.nodes,
        trace_prices=grid.trace_prices,
    )
    tl = traces.timeline(scn, s, start, max(grid.deadlines_h))
    past = traces.history(scn, start, grid.nodes)
    od_cost = tl.od_price * (tl.work + tl.overhead) * tl.step_s / 3600  # the on-demand policy's bill
    optimum = opt.solve(tl)  # every gap is measured against it
    rows = []
    for deadline_h in grid.deadlines_h:
        D = tl.steps(deadline_h)
        best = optimum.cost(D)
        for name in grid.policies:
            if name == "optimal":  # None where no schedule meets the deadline (JSON has no infinity)
                fin = optimum.finish(D)
                res = {
                    "cost": best if math.isfinite(best) else None,
                    "finish_h": None if fin is None else fin * tl.step_s / 3600,
                    "deadline_met": math.isfinite(best),
                    "preemptions": None,
                    "switches": None,
                    "launches": None,
                    "spot_h": None,
                    "od_h": None,
                    "work_h": None,
                    "lost_h": None,
                    "restart_h": None,
                }
            else:
                pol = make(name)
                pol.warm(past)
                res = simulate(pol, tl, D).as_dict()
            feasible = math.isfinite(best) and best > 0
            gap = (res["cost"] - best) / best if feasible and res["cost"] is not None else None
            rows.append(
                {
                    "scenario": scn.name,
                    "zones": len(scn.zones),
                    "start_tick": start,
                    "policy": name,
                    "deadline_hours": deadline_h,
                    "overhead_hours": overhead,
                    "overhead_hours_effective": tl.overhead * tl.step_s / 3600,
                    "step_seconds": tl.step_s,
                    **res,
                    "cost_ratio": None if res["cost"] is None else res["cost"] / od_cost,
                    "optimal_cost": best if feasible else None,
                    "gap_to_optimal": gap,
                }
            )
    return rows


def run(scenarios: Iterable[traces.Scenario], grid: Grid, workers: int = 1) -> list[dict]:
    for p in grid.policies:
        if p not in REGISTRY:
            make(p)  # raises the one-line error
    tasks = [
        (scn, grid, start, oh)
        for scn in scenarios
        for start in start_offsets(scn, grid.starts, grid.seed, grid.start_ticks)
        for oh in grid.overheads_h
    ]
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            chunks = pool.map(_one, tasks, chunksize=max(1, len(tasks) // (workers * 8)))
    else:
        chunks = [_one(t) for t in tasks]
    return [r for c in chunks for r in c]


def summarize(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["policy"], r["deadline_hours"], r["overhead_hours"]), []).append(r)
    out = []
    for (policy, deadline, overhead), rs in groups.items():
        ratios = np.array([r["cost_ratio"] for r in rs if r["cost_ratio"] is not None])
        gaps = [r["gap_to_optimal"] for r in rs if r["gap_to_optimal"] is not None]
        out.append(
            {
                "policy": policy,
                "deadline_hours": deadline,
                "overhead_hours": overhead,
                "runs": len(rs),
                "mean_cost_ratio": float(ratios.mean()) if ratios.size else None,
                "p95_cost_ratio": float(np.percentile(ratios, 95)) if ratios.size else None,
                "miss_rate": float(np.mean([not r["deadline_met"] for r in rs])),
                "mean_gap_to_optimal": float(np.mean(gaps)) if gaps else None,
            }
        )
    order = {p: i for i, p in enumerate(dict.fromkeys(r["policy"] for r in runs))}
    out.sort(key=lambda s: (s["deadline_hours"], s["overhead_hours"], order[s["policy"]]))
    return out
