"""The reference policies spotrain is measured against.

- ``on-demand``: on-demand from start to end.
- ``greedy`` (Can't Be Late, NSDI'24): spot while available, wait while not, and on-demand at
  the last moment the paper's T + 2D / T + D rules allow.
- ``uniform-progress`` (the paper's UP): keep progress at or above the uniform pace
  ``ep(t) = t·C/D``: on-demand when idle and behind, spot whenever available, and once on
  on-demand stay there while spot is down or progress is not ahead of ``ep(t + 2d)``.

Both follow the control flow of the paper's simulator (``sky_spot/strategies/strawman.py`` and
``rc_cr_threshold.py``; copies in public repositories, e.g. whuang369/Frontier-CS under
research/cant_be_late), tick quantities included (time left floored, work rounded up to ticks).
- ``eager-next-region`` (SkyPilot's default recovery): spot only; after a preemption move to the
  next zone that has spot, wait while none has; never on-demand, so it can miss deadlines.

Single-zone policies pick a home zone at the first decision (the first zone with spot up, else
the first zone) and stay there. spotrain's own safety net (``Policy.must_commit``) applies to
greedy and UP only when checkpoints make a preemption lose work, which the paper does not model.
"""

from __future__ import annotations

import math
from typing import Sequence

from .base import (
    EPS,
    ON_DEMAND,
    SPOT,
    WAIT,
    WAIT_DECISION,
    Decision,
    JobView,
    Placement,
    Policy,
    ZoneView,
    register,
)


class _HomeZone(Policy):
    home: int | None = None

    def _home(self, zones: Sequence[ZoneView]) -> int:
        if self.home is None:
            self.home = next((i for i, z in enumerate(zones) if z.spot_up), 0)
        return self.home


@register
class OnDemand(_HomeZone):
    name = "on-demand"
    deadline_safe = True

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        return Decision(ON_DEMAND, at.zone if at.kind == ON_DEMAND else self._home(zones))


def _paper_clock(job: JobView) -> tuple[float, float, float, float]:
    """The quantities the Can't Be Late simulator's strategies compute each tick, in seconds:
    ``remaining_time`` (time to the deadline, floored to whole ticks), the work left, and that
    work plus one and two restart overheads, each rounded up to whole ticks."""
    gap = job.step_s
    remaining_time = math.floor(job.time_left_s / gap) * gap if math.isfinite(job.time_left_s) else math.inf
    left = job.remaining_s
    with_d = math.ceil((left + job.overhead_s) / gap - EPS) * gap
    with_2d = math.ceil((left + 2 * job.overhead_s) / gap - EPS) * gap
    return remaining_time, left, with_d, with_2d


class _Paper(_HomeZone):
    """The paper's rules are written for its simulator, where a preemption loses only the restart
    overhead. With ``checkpoint_interval_s`` set, a preemption here also loses the work since the
    last checkpoint — outside the paper's model — and spotrain's safety net (``Policy.safe``)
    applies on top (and, once it took on-demand, keeps it: the work at risk only grows), so the
    policy stays deadline-safe; without checkpoints it never binds."""

    deadline_safe = True

    def __init__(self) -> None:
        self.committed = (
            False  # the safety net took on-demand: it stays there (the paper's rules would leave it)
        )

    def _choose(self, job: JobView, at: Placement, has_spot: bool, spot: Decision, od: Decision) -> Decision:
        """The policy's own rules, before the deadline rules every paper strategy shares."""
        raise NotImplementedError

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        home = self._home(zones)
        od = Decision(ON_DEMAND, at.zone if at.kind == ON_DEMAND else home)
        spot = Decision(SPOT, at.zone if at.kind == SPOT else home)
        has_spot = zones[home].spot_up
        remaining_time, left, with_d, with_2d = _paper_clock(job)
        if left <= 1e-3:  # the work is done (the paper's NONE); a live attempt finishes where it runs
            return od if at.kind == ON_DEMAND else spot if at.kind == SPOT else WAIT_DECISION
        if self.committed:
            return od
        d = self._choose(job, at, has_spot, spot, od)
        if with_2d >= remaining_time and at.kind in (WAIT, ON_DEMAND):  # T + 2D: on-demand
            d = od
        if with_d >= remaining_time:  # T + D: keep a spot instance past its restart, else on-demand
            d = spot if at.kind == SPOT and at.overhead_left_s < 1e-3 else od
            if job.overhead_s == 0 and has_spot:  # restarts are free
                d = spot
        if job.checkpoint_interval_s is not None and not self.safe(d, job, at):
            self.committed = True
            return od
        return d


@register
class Greedy(_Paper):
    """The paper's greedy ("strawman", Can't Be Late simulator ``sky_spot/strategies/strawman.py``
    ``_step``), line by line: request spot when it is up, else nothing; on-demand once the work
    plus two restarts no longer fits before the deadline while idle or on on-demand; once the work
    plus one restart does not fit, keep a running spot instance that is past its restart, else
    on-demand (spot again when restarts are free)."""

    name = "greedy"

    def _choose(self, job: JobView, at: Placement, has_spot: bool, spot: Decision, od: Decision) -> Decision:
        return spot if has_spot else WAIT_DECISION


@register
class UniformProgress(_Paper):
    """The paper's Uniform Progress (Can't Be Late simulator ``sky_spot/strategies/rc_cr_threshold.py``
    ``_step``, the NSDI'24 "UP" with its second condition), line by line, with c0 the work, ct
    what is left, t the time elapsed, r0 the deadline and d the restart overhead:

    1. request spot when it is up, else nothing;
    2. ``condition = (c0 − ct) − t·c0/r0 < 0`` (behind the uniform pace): spot if up, else on-demand;
    3. on on-demand: keep it while spot is down or while ``condition2 = (t + 2d)·c0/r0 − (c0 − ct) ≥ 0``
       (progress not yet ahead of the pace 2d from now) — it never idles from on-demand;
    4. the T + 2D rule and 5. the T + D rule, as greedy's.
    """

    name = "uniform-progress"

    def _choose(self, job: JobView, at: Placement, has_spot: bool, spot: Decision, od: Decision) -> Decision:
        c0, ct, t = job.total_work_s, job.remaining_s, job.elapsed_s
        r0 = job.elapsed_s + job.time_left_s
        d = spot if has_spot else WAIT_DECISION
        if (c0 - ct) - t * c0 / r0 < 0:  # condition: behind the uniform pace
            d = spot if has_spot else od
        if at.kind == ON_DEMAND and (not has_spot or (t + 2 * job.overhead_s) * c0 / r0 - (c0 - ct) >= 0):
            d = od  # condition2: keep the on-demand VM
        return d


@register
class EagerNextRegion(Policy):
    name = "eager-next-region"
    multi_zone = True

    def __init__(self) -> None:
        self.last: int | None = None

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        if at.kind == SPOT and zones[at.zone].spot_up:
            return Decision(SPOT, at.zone)
        n = len(zones)
        start = 0 if self.last is None else self.last + 1
        order = [(start + i) % n for i in range(n)]
        for z in order:
            if zones[z].spot_up:
                self.last = z
                return Decision(SPOT, z)
        return WAIT_DECISION
