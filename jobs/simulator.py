"""Replay a timeline step by step under a policy. Pure: same timeline + policy → same result.

Rules: a spot instance is preempted at the first step its zone has no spot; every (re)start
spends ``overhead`` steps billed but without progress; with a checkpoint interval a preemption
also loses the work since the last checkpoint (a voluntary stop saves one first); costs accrue
per step. A run still unfinished at its deadline is counted as missed and finished on
on-demand, so its cost is what the user would really pay for the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .policies.base import ON_DEMAND, SPOT, WAIT, JobView, Placement, Policy, ZoneView
from .traces import Timeline


@dataclass(frozen=True)
class RunResult:
    cost: float
    finish_h: float
    deadline_met: bool
    preemptions: int
    switches: int  # voluntary moves between placements (spot↔on-demand, zone to zone)
    launches: int  # instances started
    spot_h: float  # billed hours on spot
    od_h: float  # billed hours on on-demand
    work_h: float  # progress when it finished (the job's work, exactly)
    lost_h: float  # work lost to preemptions (since the last checkpoint)
    restart_h: float  # billed hours spent restarting

    def as_dict(self) -> dict:
        return asdict(self)


def _views(tl: Timeline) -> list[tuple[int, tuple[ZoneView, ...]]]:
    """Zone views, rebuilt only at steps where some zone's availability or price changes."""
    up, price = tl.up, tl.spot_price
    change = np.zeros(tl.horizon, dtype=bool)
    change[0] = True
    if tl.horizon > 1:
        change[1:] = (up[:, 1:] != up[:, :-1]).any(axis=0) | (price[:, 1:] != price[:, :-1]).any(axis=0)
    out = []
    for t in np.flatnonzero(change):
        out.append(
            (
                int(t),
                tuple(
                    ZoneView(n, bool(up[z, t]), float(price[z, t]), tl.od_price)
                    for z, n in enumerate(tl.zones)
                ),
            )
        )
    return out


def simulate(policy: Policy, tl: Timeline, deadline: int, policy_sees_deadline: bool = True) -> RunResult:
    """Run ``policy`` on ``tl`` with a deadline of ``deadline`` steps (≤ the horizon).

    With ``policy_sees_deadline`` False the policy is told there is no deadline (a job without
    one); ``deadline`` is then only where the replay ends and on-demand finishes the work."""
    if deadline > tl.horizon:
        raise ValueError("deadline beyond the timeline's horizon")
    step, W, k, ck = tl.step_s, tl.work, tl.overhead, tl.checkpoint
    up = tl.up
    spot_cost = tl.spot_price * (step / 3600)
    od_cost = tl.od_price * step / 3600
    views = _views(tl)
    vi = 0
    zones = views[0][1]
    n = since = 0
    kind, zone, oh_left, running = WAIT, None, 0, 0
    cost = 0.0
    pre = sw = launches = spot_steps = od_steps = lost = restarting = 0
    ck_s = None if ck is None else ck * step
    t = 0
    while n < W:
        if t >= deadline:  # missed: finish on on-demand (restart unless already there)
            restart = oh_left if kind == ON_DEMAND else k
            extra = (W - n) + restart
            cost += extra * od_cost
            od_steps += extra
            restarting += restart
            launches += kind != ON_DEMAND
            n = W
            t += extra
            break
        if vi + 1 < len(views) and views[vi + 1][0] == t:
            vi += 1
            zones = views[vi][1]
        if kind == SPOT and not up[zone, t]:
            pre += 1
            if ck is not None:
                n -= since
                lost += since
            since = 0
            kind, zone, oh_left, running = WAIT, None, 0, 0
        left = (deadline - t) * step if policy_sees_deadline else float("inf")
        d = policy.decide(
            JobView(W * step, (W - n) * step, t * step, left, k * step, step, ck_s, since * step),
            Placement(kind, zone, oh_left * step, running * step),
            zones,
        )
        dk, dz = d.kind, d.zone
        if dk == ON_DEMAND and dz is None:
            dz = 0
        if dk == SPOT and not up[dz, t]:
            dk, dz = WAIT, None  # asked for spot where there is none: nothing starts
        if dk != kind or (dk != WAIT and dz != zone):
            if kind != WAIT:
                since = 0  # a voluntary stop checkpoints first
                if dk != WAIT:
                    sw += 1
            kind, zone = dk, (dz if dk != WAIT else None)
            if kind != WAIT:
                oh_left, running = k, 0
                launches += 1
        if kind != WAIT:
            if kind == SPOT:
                cost += spot_cost[zone, t]
                spot_steps += 1
            else:
                cost += od_cost
                od_steps += 1
            running += 1
            if oh_left:
                oh_left -= 1
                restarting += 1
            else:
                n += 1
                since += 1
                if ck is not None and since >= ck:
                    since = 0
        t += 1
    h = step / 3600
    return RunResult(
        float(cost),
        t * h,
        t <= deadline,
        pre,
        sw,
        launches,
        spot_steps * h,
        od_steps * h,
        n * h,
        lost * h,
        restarting * h,
    )
