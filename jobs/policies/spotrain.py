"""``spotrain``: deadline-safe, multi-zone, checkpoint-aware spot policy.

Greedy spends the job's slack waiting early and then sits on on-demand to the end, paying
on-demand while spot is up; UP paces progress uniformly, buying on-demand early even when spot
will be plentiful, and its hysteresis keeps it there. Both use fixed rules. ``spotrain``
decides from the market it observes: it keeps online statistics of spot lifetimes and outages
(per zone, and for "some zone has spot"), fits age-dependent hazards to them (a semi-Markov
model with a weak prior), and acts on the optimal decision table of that model for the job's
time left, slack and the age of the current spell (``mdp.table``): when to wait out an outage,
when to run on-demand through it, when a spot comes back whether — and after how long up —
it is worth the restart from on-demand. Only the past is used.

On top of the table:
- the safety net ``Policy.must_commit`` (counting the work at risk since the last checkpoint),
  so no feasible deadline is missed whatever the model says;
- multi-zone: spot goes to the zone with spot up and the lowest expected price per unit of
  progress; after a preemption it moves to another zone with spot rather than waiting;
- a restart in progress is not interrupted except by the safety net;
- checkpoint-aware: a preemption costs the model half a checkpoint interval of work.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from . import mdp
from .base import ON_DEMAND, SPOT, WAIT_DECISION, Decision, JobView, Placement, Policy, ZoneView, register

GRID_STEPS = 400  # decision table resolution along the deadline


class Spells:
    """Online spot lifetimes and outages of one availability signal, with a weak prior.

    ``residual(up, age)``: the expected rest of a spell that has lasted ``age`` seconds, from
    the spells seen so far (heavy tails make it grow with age: a spot that has run for hours
    is likely to run on, an outage that has lasted hours is likely to last).
    """

    PRIOR_S = 3600.0  # one prior spell of an hour, each way
    PRIOR_WEIGHT = 1.0

    def __init__(self) -> None:
        self.done: dict[bool, list[float]] = {True: [], False: []}
        self._sorted: dict[bool, tuple[np.ndarray, np.ndarray] | None] = {True: None, False: None}
        self.current: bool | None = None
        self.age = 0.0
        self.version = 0  # bumps whenever a spell completes (the means change)
        self.seq: list[tuple[bool, float]] = []  # finished spells in order: (up?, seconds)

    def add(self, past) -> None:
        self.done[True].extend(past.up)
        self.done[False].extend(past.down)
        self.seq.extend(past.sequence())
        if past.current is not None:  # the spell in progress when the history ends goes on aging
            self.current, self.age = past.current, past.current_s
        self._sorted = {True: None, False: None}
        self.version += 1

    def observe(self, is_up: bool, dt: float) -> None:
        if is_up != self.current:
            if self.current is not None:
                self.done[self.current].append(self.age)
                self.seq.append((self.current, self.age))
                self._sorted[self.current] = None
                self.version += 1
            self.current, self.age = is_up, 0.0
        self.age += dt

    def windows(self, blip_s: float) -> tuple[list[float], list[float], int, float]:
        """Spot windows — up spells joined across blips, outages shorter than ``blip_s`` — the
        outages between them, the number of blips and the seconds spent in windows (the one
        going on included)."""
        wins: list[float] = []
        outs: list[float] = []
        blips, exposure, cur = 0, 0.0, None
        for up, length in self.seq:
            if up:
                cur = length if cur is None else cur + length
            elif length < blip_s and cur is not None:
                cur += length
                blips += 1
            else:
                if cur is not None:
                    wins.append(cur)
                    exposure += cur
                    cur = None
                if length >= blip_s:
                    outs.append(length)
        if cur is not None:
            exposure += cur + (self.age if self.current else 0.0)
            if self.current is False and self.age >= blip_s:
                wins.append(cur)
        elif self.current:
            exposure += self.age
        return wins, outs, blips, exposure

    def state(self, blip_s: float) -> tuple[bool, float]:
        """The market now as the model sees it: in a spot window (an outage younger than
        ``blip_s`` may still be a blip) and its age, or in an outage and its age (seconds)."""
        if self.current is None:
            return True, 0.0
        if self.current is False and self.age >= blip_s:
            return False, self.age
        age, i = self.age, len(self.seq) - 1
        if self.current is False:  # maybe a blip: the window before it, if any, goes on
            if i < 0 or not self.seq[i][0]:
                return False, self.age
            age += self.seq[i][1]
            i -= 1
        while i >= 1 and not self.seq[i][0] and self.seq[i][1] < blip_s and self.seq[i - 1][0]:
            age += self.seq[i][1] + self.seq[i - 1][1]
            i -= 2
        return True, age

    def residual(self, up: bool, age: float = 0.0) -> float:
        cache = self._sorted[up]
        if cache is None:
            arr = np.sort(np.asarray(self.done[up], dtype=float))
            cache = self._sorted[up] = (arr, np.concatenate([np.cumsum(arr[::-1])[::-1], [0.0]]))
        arr, tail = cache
        i = int(np.searchsorted(arr, age, side="right"))
        count = len(arr) - i
        total = tail[i] - age * count
        if self.PRIOR_S > age:
            total += (self.PRIOR_S - age) * self.PRIOR_WEIGHT
            count += self.PRIOR_WEIGHT
        return total / count if count else max(age, 1.0)


@register
class Spotrain(Policy):
    name = "spotrain"
    deadline_safe = True
    multi_zone = True

    def __init__(self, grid_steps: int = GRID_STEPS) -> None:
        if grid_steps < 10:
            raise ValueError(
                f"grid_steps={grid_steps}: the decision table needs at least 10 steps along the deadline"
            )
        self.grid_steps = grid_steps
        self.zone_stats: list[Spells] = []
        self.any_stats = Spells()
        self.grid: tuple[float, int, int] | None = None
        self._fit: tuple[int, tuple, tuple] | None = None  # spells seen at the last fit; up and down hazards
        self._table: tuple[tuple, object] | None = None

    def warm(self, history) -> None:
        self.zone_stats = [Spells() for _ in history.zones]
        for st, past in zip(self.zone_stats, history.zones):
            st.add(past)
        self.any_stats.add(history.any)

    def _observe(self, zones: Sequence[ZoneView], dt: float) -> None:
        if not self.zone_stats:
            self.zone_stats = [Spells() for _ in zones]
        for st, z in zip(self.zone_stats, zones):
            st.observe(z.spot_up, dt)
        self.any_stats.observe(any(z.spot_up for z in zones), dt)

    def _spot_zone(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> int | None:
        if at.kind == SPOT and zones[at.zone].spot_up:
            return at.zone
        up = [i for i, z in enumerate(zones) if z.spot_up]
        if not up:
            return None
        d = job.overhead_s

        def unit_price(i: int) -> float:
            st = self.zone_stats[i]
            life = max(st.residual(True, st.age if i == at.zone else 0.0), 2 * d + 1.0)
            return zones[i].spot_price * life / (life - d)

        return min(up, key=unit_price)

    def table_for(self, job: JobView, spot_price: float, od_price: float):
        if self.grid is None:  # fixed for the job: the deadline and the slack it starts with
            delta = max((job.elapsed_s + job.time_left_s) / 3600 / self.grid_steps, job.step_s / 3600)
            self.grid = (
                delta,
                int(math.ceil(job.time_left_s / 3600 / delta)) + 1,
                int(math.ceil(max(job.slack_s, 0) / 3600 / delta)) + 1,
            )
        delta, T, S = self.grid
        edges = mdp.age_edges(T)
        st = self.any_stats
        n = len(st.seq)
        if self._fit is None or n >= self._fit[0] * 1.25 + 8:  # refit as the history grows by a quarter
            wins, outs, blips, exposure = st.windows(self._blip_s(job))
            blip_q = mdp.quantise_rate(blips / (exposure / 3600 + 1.0)) if blips else None
            window, age = st.state(self._blip_s(job))  # the spell going on counts as far as it has lasted
            self._fit = (
                n,
                mdp.hazards(np.asarray(wins) / 3600, edges, delta, censored_h=[age / 3600] if window else ()),
                mdp.hazards(np.asarray(outs) / 3600, edges, delta, censored_h=() if window else [age / 3600]),
                blip_q,
            )
        memo = (self._fit, spot_price, od_price, job.overhead_s, job.checkpoint_interval_s)
        if self._table is not None and self._table[0] == memo:
            return self._table[1]
        loss_h = (job.checkpoint_interval_s or 0.0) / 2 / 3600
        act = mdp.table(
            self._fit[1],
            self._fit[2],
            edges,
            round(job.overhead_s / 3600, 6),
            round(loss_h, 6),
            delta,
            T,
            S,
            round(od_price, 4),
            round(spot_price, 2),
            self._fit[3],
        )
        self._table = (memo, act)
        return act

    def _blip_s(self, job: JobView) -> float:
        """Outages shorter than this are blips inside a spot window: shorter than a decision
        step (the table cannot see them) and than a restart (waiting them out is cheap)."""
        return min(self.grid[0] * 3600, job.overhead_s)

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        self._observe(zones, job.step_s)
        od = Decision(ON_DEMAND, at.zone if at.kind == ON_DEMAND else 0)
        if job.time_left_s == float("inf"):  # no deadline: spot whenever there is some, else wait
            z = self._spot_zone(job, at, zones)
            return Decision(SPOT, z) if z is not None else WAIT_DECISION
        if self.must_commit(job, at):
            return od
        running = at.kind != "wait" and not (at.kind == SPOT and not zones[at.zone].spot_up)
        if running and at.overhead_left_s > 0:
            d = Decision(at.kind, at.zone)  # let a restart finish
            return d if self.safe(d, job, at) else od
        zone = self._spot_zone(job, at, zones)
        spot_price = zones[zone].spot_price if zone is not None else min(z.spot_price for z in zones)
        act = self.table_for(job, spot_price, zones[0].od_price)
        delta, T, S = self.grid
        ti = min(T, max(1, int(round(job.time_left_s / 3600 / delta))))
        si = min(
            S, max(0, int(math.floor(job.slack_s / 3600 / delta))), ti - 1
        )  # work left: at least one grid step
        mode = (mdp.SPOT if at.kind == SPOT else mdp.OD) if running else mdp.IDLE
        edges = mdp.age_edges(T)  # the market state: in a window or an outage, and the age bucket of it
        window, age = self.any_stats.state(self._blip_s(job))
        k = mdp.bucket(age / 3600 / delta, edges)
        if window and zone is None and self._fit[3] is None:  # a young outage, but this market has no blips
            window, k = False, mdp.bucket(self.any_stats.age / 3600 / delta, edges)
        a = act[ti, si, mode, k if window else len(edges) + k]
        if a == mdp.SPOT_A and zone is not None:
            d = Decision(SPOT, zone)
        elif a == mdp.OD_A:
            return od
        else:
            d = WAIT_DECISION
        return d if self.safe(d, job, at) else od  # the safety net
