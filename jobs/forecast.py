"""Cost forecasts that include preemptions: expected cost, p90 cost and the probability of
meeting the deadline for one offer, by running the *same* policy objects the jobs controller
uses (``spotrain.jobs.policies``) through the trace simulator many times.

The market comes from spot traces when one fits the offer (files under a traces folder whose
name starts with the offer's region and mentions its accelerator, e.g. ``us-west-2a_v100_1``;
several zones of the region form one multi-zone market), replayed from random start offsets;
otherwise from the default hazard model (exponential spot lifetimes of 1/rate hours, outages
of ``outage_hours``). Pure: same inputs and seed, same forecast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotrain.pricing.estimate import Hazard

from . import traces
from .policies import make
from .policies.base import MarketHistory, SpellStats
from .simulator import simulate

MAX_STEPS = 240  # at least this resolution over the horizon: forecasts are for planning, not accounting
# A job of more than MAX_WORK_H hours is forecast as a MAX_WORK_H-hour job on the same terms (deadline
# slack scaled alike) and its cost and hours scaled up: in a stationary market cost grows linearly with
# the work, and the forecast's time and memory stay those of a MAX_WORK_H-hour job whatever the size.
MAX_WORK_H = 24.0
GRID_TICKS = 200_000  # and never more ticks than this over the horizon


@dataclass(frozen=True)
class Market:
    source: str
    scenario: traces.Scenario | None = None
    lifetime_h: float = 10.0
    outage_h: float = 0.25


@dataclass(frozen=True)
class Forecast:
    expected_cost: float
    p90_cost: float
    p_meet_deadline: float | None  # None without a deadline
    expected_hours: float
    source: str
    samples: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def hazard_market(h: Hazard, nodes: int = 1) -> Market:
    rate = h.rate_per_hour * nodes
    return Market(
        f"hazard model ({rate:g} preemptions/h, {h.outage_hours:g} h outages)",
        None,
        lifetime_h=1 / rate if rate > 0 else math.inf,
        outage_h=h.outage_hours,
    )


def traces_dir(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get("SPOTRAIN_TRACES")
    return Path(env) if env else None


def trace_market(root: Path | None, region: str, accelerator: str) -> Market | None:
    """The zones of ``region`` traced for ``accelerator`` under ``root``, as one market."""
    if root is None or not root.exists() or not region or not accelerator:
        return None
    acc = accelerator.lower().replace("-", "")
    files = sorted(
        p
        for p in root.rglob("*.json")
        if p.stem.lower().startswith(region.lower()) and acc in p.stem.lower().replace("-", "")
    )
    if not files:
        return None
    by_folder: dict[Path, list[Path]] = {}
    for f in files:
        by_folder.setdefault(f.parent, []).append(f)
    folder, group = max(by_folder.items(), key=lambda kv: (len(kv[1]), str(kv[0])))
    read = [traces.read_trace(f) for f in group]
    if len({g for _, _, g in read}) > 1:
        group, read = group[:1], read[:1]
    n = max(len(d) for d, _, _ in read)
    scn = traces.Scenario(
        folder.name,
        tuple(f.stem for f in group),
        np.stack([np.resize(d, n) for d, _, _ in read]),
        np.stack([np.resize(p, n) for _, p, _ in read]),
        read[0][2],
    )
    return Market(f"traces {', '.join(f.name for f in group)}", scn)


def model_history(m: Market, spells: int = 200) -> MarketHistory:
    """What a policy would have learnt from watching the hazard model's market for a while: the
    exponential spell lengths' quantiles (the same for every sample, so policies that fit age
    hazards fit them once)."""
    q = -np.log1p(-(np.arange(spells) + 0.5) / spells)  # quantiles of a unit-mean exponential
    life = (
        tuple(float(x) for x in q * m.lifetime_h * 3600) if math.isfinite(m.lifetime_h) else (1e9,) * spells
    )
    past = SpellStats(life, tuple(float(x) for x in q * m.outage_h * 3600))
    return MarketHistory((past,), past)


def _markov(
    rng: np.random.Generator, steps: int, step_h: float, lifetime_h: float, outage_h: float
) -> np.ndarray:
    """Alternating exponential spells (two-state Markov chain), starting in its stationary state."""
    if not math.isfinite(lifetime_h):
        return np.ones((1, steps), dtype=bool)
    up = np.empty(steps, dtype=bool)
    state = bool(rng.random() < lifetime_h / (lifetime_h + outage_h))
    i = 0
    while i < steps:
        n = (
            int(math.ceil(rng.exponential(lifetime_h if state else outage_h) / step_h))
            if (outage_h > 0 or state)
            else 0
        )
        up[i : i + n] = state
        i += n
        state = not state
    return up[None, :]


def forecast(
    work_h: float,
    overhead_h: float,
    spot_price: float,
    od_price: float,
    market: Market,
    deadline_h: float | None = None,
    checkpoint_h: float | None = None,
    policy: str = "spotrain",
    samples: int = 64,
    seed: int = 0,
) -> Forecast:
    """Simulate ``policy`` ``samples`` times on ``market`` for a job of ``work_h`` hours."""
    if work_h <= 0:
        return Forecast(0.0, 0.0, None if deadline_h is None else 1.0, 0.0, market.source, 0)
    if work_h > MAX_WORK_H:
        f = work_h / MAX_WORK_H
        small = forecast(
            MAX_WORK_H,
            overhead_h,
            spot_price,
            od_price,
            market,
            None if deadline_h is None else deadline_h / f,
            checkpoint_h,
            policy,
            samples,
            seed,
        )
        return Forecast(
            small.expected_cost * f,
            small.p90_cost * f,
            small.p_meet_deadline,
            small.expected_hours * f,
            small.source,
            samples,
        )
    horizon_h = deadline_h if deadline_h is not None else max(4 * work_h, work_h + 24)
    horizon_h = max(horizon_h, work_h + overhead_h + 1e-9)
    # steps fine enough for the restart overhead and the work; a run stops when the work is done
    step_s = max(
        min(horizon_h / MAX_STEPS, overhead_h / 2 if overhead_h > 0 else math.inf, work_h / 60) * 3600,
        1.0,
        horizon_h * 3600 / GRID_TICKS,
    )
    steps = int(math.floor(horizon_h * 3600 / step_s + 1e-9))
    work = int(math.ceil(work_h * 3600 / step_s - 1e-9))
    k = int(round(overhead_h * 3600 / step_s))
    ck = None if checkpoint_h is None else max(1, int(round(checkpoint_h * 3600 / step_s)))
    rng = np.random.default_rng(seed)
    costs, hours, met = [], [], []
    # every sample's policy starts from the market's statistics over the whole trace (what a
    # policy watching this market would know), so they share one fit and one decision table
    scn = market.scenario
    whole = (
        traces.history(scn, scn.ticks, hours=scn.ticks * scn.gap_s / 3600, open_end=False)
        if scn is not None
        else None
    )
    for _ in range(samples):
        if market.scenario is not None:
            scn = market.scenario
            start = int(rng.integers(0, scn.ticks))
            up, _ = traces.resample(scn, start, step_s, steps)
            zones = scn.zones
            history = whole
        else:
            up = _markov(rng, steps, step_s / 3600, market.lifetime_h, market.outage_h)
            zones, history = ("z",), model_history(market)
        # the offer's own price: a trace's prices are for the instance it was recorded on
        tl = traces.Timeline(zones, step_s, up, np.full(up.shape, spot_price), od_price, work, k, ck)
        pol = make(policy)
        if history is not None:
            pol.warm(history)
        r = simulate(pol, tl, steps, policy_sees_deadline=deadline_h is not None)
        costs.append(r.cost)
        hours.append(r.finish_h)
        met.append(r.deadline_met)
    c = np.asarray(costs)
    return Forecast(
        float(c.mean()),
        float(np.percentile(c, 90)),
        float(np.mean(met)) if deadline_h is not None else None,
        float(np.mean(hours)),
        market.source,
        samples,
    )
