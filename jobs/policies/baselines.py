"""The reference policies spotrain is measured against.

- ``on-demand``: on-demand from start to end.
- ``greedy`` (Can't Be Late, NSDI'24): spot while available, wait while not, and switch to
  on-demand for good at the last safe moment.
- ``uniform-progress`` (the paper's UP): keep progress at or above the uniform pace
  ``ep(t) = t·C/D``: on-demand when idle and behind, spot whenever available, hysteresis (stay
  on on-demand until ``cp(t) ≥ ep(t + 2d)``) and the safety net.
- ``eager-next-region`` (SkyPilot's default recovery): spot only; after a preemption move to the
  next zone that has spot, wait while none has; never on-demand, so it can miss deadlines.

Single-zone policies pick a home zone at the first decision (the first zone with spot up, else
the first zone) and stay there. The safety net is ``Policy.must_commit``, the tightest rule
that never misses a feasible deadline; greedy and UP both use it.
"""

from __future__ import annotations

from typing import Sequence

from .base import ON_DEMAND, SPOT, WAIT_DECISION, Decision, JobView, Placement, Policy, ZoneView, register


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


@register
class Greedy(_HomeZone):
    name = "greedy"
    deadline_safe = True

    def __init__(self) -> None:
        self.committed = False

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        home = self._home(zones)
        od = Decision(ON_DEMAND, at.zone if at.kind == ON_DEMAND else home)
        if self.committed or self.must_commit(job, at):
            self.committed = True
            return od
        d = Decision(SPOT, home) if zones[home].spot_up else WAIT_DECISION
        if not self.safe(d, job, at):  # the last safe moment: on-demand for good
            self.committed = True
            return od
        return d


@register
class UniformProgress(_HomeZone):
    name = "uniform-progress"
    deadline_safe = True

    def __init__(self) -> None:
        self.committed = False

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        home = self._home(zones)
        od = Decision(ON_DEMAND, at.zone if at.kind == ON_DEMAND else home)
        if self.committed or self.must_commit(job, at):
            self.committed = True
            return od
        deadline = job.elapsed_s + job.time_left_s
        done = job.total_work_s - job.remaining_s

        def ep(t: float) -> float:
            return t * job.total_work_s / deadline

        if at.kind == ON_DEMAND and done < ep(job.elapsed_s + 2 * job.overhead_s):
            return od  # hysteresis
        if zones[home].spot_up:
            d = Decision(SPOT, home)
        elif done < ep(job.elapsed_s):
            return od
        else:
            d = WAIT_DECISION
        if not self.safe(d, job, at):  # safety net: on-demand until the end
            self.committed = True
            return od
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
