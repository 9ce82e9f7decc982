"""How close can an online policy get? spotrain against the same policy given the *true* spell
distributions, on the real traces and on renewal surrogates of them.

``benchmarks/spot_policy.py`` measures spotrain against uniform-progress (UP) and the
omniscient optimum. The optimum knows the future; no online policy can. This benchmark asks
how much of spotrain's remaining gap is the price of not knowing the future at all, and how
much is its own doing (an estimated market model, a coarse decision grid):

- **real**: each single-zone trace as it is.
- **renewal**: the same trace with its up spells shuffled among themselves and its down spells
  among themselves (seeded). Lengths, availability and spell counts are the trace's; any order
  in time (calm and choppy periods, a daily pattern) is gone. Spotrain's market model — spells
  whose lengths are independent draws from an age-dependent hazard — is then exactly true.

Policy variants on both: UP; spotrain as shipped (it learns from the 7 days before the start);
spotrain told the whole trace's spell lengths ("known market" — on the renewal data that is the
true model, so with a fine grid it is as good as an online policy can be); each at the grid
resolutions given; and spotrain told the spell lengths of the 7 days before the start *and of the
run's own deadline window* ("knowing its window": non-causal, so it also bounds what detecting a
calm or choppy period as it starts could buy). Gaps are mean (cost − optimum) / optimum over the same runs.

    python -m benchmarks.spot_policy_limit [--deadline 52] [--overhead 0.4] [--starts 30] \
        [--grid-steps 400,800]

Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np

from spotrain.jobs import sweep, traces
from spotrain.jobs.policies import make
from spotrain.jobs.policies import optimal as opt
from spotrain.jobs.policies.base import MarketHistory, SpellStats
from spotrain.jobs.simulator import simulate

ROOT = Path(__file__).resolve().parent.parent


def renewal(scn: traces.Scenario, seed: int) -> traces.Scenario:
    """``scn`` (one zone) with its up spells shuffled among themselves and its down spells too."""
    up = scn.avail[0] >= 1
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(up.astype(np.int8))) + 1, [up.size]])
    spells = [(bool(up[a]), b - a) for a, b in zip(cuts[:-1], cuts[1:])]
    key = sum(ord(c) * 31**i for i, c in enumerate(scn.name)) % (2**31)
    rng = np.random.default_rng([seed, key])
    pools = {side: rng.permutation([n for s, n in spells if s == side]).tolist() for side in (True, False)}
    avail = np.concatenate([np.full(pools[side].pop(), 1 if side else 0) for side, _ in spells])
    return dataclasses.replace(scn, avail=avail[None, :].astype(scn.avail.dtype), prices=scn.prices[:1])


def known_market(scn: traces.Scenario, past: MarketHistory) -> MarketHistory:
    """The whole trace's finished spells, with the spell going on at the start as in ``past``."""
    whole = traces.spell_stats(scn.avail[0] >= 1, scn.gap_s, open_end=False)
    cur = past.any
    stats = SpellStats(whole.up, whole.down, cur.current, cur.current_s, whole.first_up)
    return MarketHistory((stats,), stats)


def known_window(scn: traces.Scenario, start: int, hours: float, past: MarketHistory) -> MarketHistory:
    """The finished spells of the 7 days before ``start`` and of the ``hours`` after it — the run's
    own future included — with the spell going on at the start as in ``past``."""
    lo = max(0, start - int(traces.HISTORY_H * 3600 / scn.gap_s))
    hi = start + int(math.ceil(hours * 3600 / scn.gap_s))
    w = traces.spell_stats(scn.avail[0, lo:hi] >= 1, scn.gap_s, open_end=False)
    cur = past.any
    stats = SpellStats(w.up, w.down, cur.current, cur.current_s, w.first_up)
    return MarketHistory((stats,), stats)


def _one(args) -> list[tuple[str, str, float]]:
    data, scn, start, a = args
    s = traces.Setting(overhead_h=a.overhead)
    tl = traces.timeline(scn, s, start, a.deadline)
    D = tl.steps(a.deadline)
    best = opt.solve(tl).cost(D)
    if not (math.isfinite(best) and best > 0):
        return []
    past = traces.history(scn, start)
    variants = [("uniform-progress", make("uniform-progress"), past)]
    for g in a.grid_steps:
        variants.append((f"spotrain, learned, grid {g}", make("spotrain", grid_steps=g), past))
        variants.append(
            (f"spotrain, known market, grid {g}", make("spotrain", grid_steps=g), known_market(scn, past))
        )
        variants.append(
            (
                f"spotrain, knowing its window, grid {g}",
                make("spotrain", grid_steps=g),
                known_window(scn, start, a.deadline, past),
            )
        )
    out = []
    for label, pol, hist in variants:
        pol.warm(hist)
        res = simulate(pol, tl, D)
        if not res.deadline_met:
            raise SystemExit(f"{label} missed the deadline on {scn.name} from tick {start}")
        out.append((data, label, (res.cost - best) / best))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "data" / "spot-traces")
    ap.add_argument("--deadline", type=float, default=52.0)
    ap.add_argument("--overhead", type=float, default=0.4)
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--grid-steps", type=lambda v: [int(x) for x in v.split(",")], default=[400, 800])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if not a.traces.exists():
        raise SystemExit(f"{a.traces}: no traces (needs ../shared/data/spot-traces)")
    t0 = time.perf_counter()
    real = [s for s in traces.load_scenarios(a.traces) if len(s.zones) == 1]
    tasks = []
    for data, scns in (("real", real), ("renewal", [renewal(s, a.seed) for s in real])):
        tasks += [
            (data, scn, start, a) for scn in scns for start in sweep.start_offsets(scn, a.starts, a.seed)
        ]
    if a.workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(a.workers) as pool:
            rows = [r for c in pool.map(_one, tasks, chunksize=4) for r in c]
    else:
        rows = [r for t in tasks for r in _one(t)]
    print(
        f"single-zone, {len(real)} traces × {a.starts} starts, {a.deadline:g} h deadline, {a.overhead:g} h "
        f"overhead ({time.perf_counter() - t0:.0f} s)\n"
    )
    labels = list(dict.fromkeys(lbl for _, lbl, _ in rows))
    print(f"{'policy':42s} {'real gap':>11s} {'÷ UP':>6s} {'renewal gap':>12s} {'÷ UP':>6s}")
    up = {
        d: np.mean([g for dd, lbl, g in rows if dd == d and lbl == "uniform-progress"])
        for d in ("real", "renewal")
    }
    for lbl in labels:
        cells = []
        for d in ("real", "renewal"):
            gaps = [g for dd, ll, g in rows if dd == d and ll == lbl]
            m, se = float(np.mean(gaps)), float(np.std(gaps) / math.sqrt(len(gaps)))
            cells.append(f"{m:.3f}±{se:.3f}")
            cells.append(f"{m / up[d]:.2f}")
        print(f"{lbl:42s} {cells[0]:>11s} {cells[1]:>6s} {cells[2]:>12s} {cells[3]:>6s}")


if __name__ == "__main__":
    main()
