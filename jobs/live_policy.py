"""The spot policy in production: the jobs controller asks the same policy objects that
``spotrain simulate`` evaluates, with a view built from the job's ledger and its attempts'
events instead of a trace.

Zones are the regions of the plan's spot offers; on-demand means the plan's best on-demand
offer. Work is measured in training steps at the measured step time; the restart overhead is
the slowest measured start (launch to first step) with a margin, until measured a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from spotrain.pricing.offer import Offer

from .policies import ON_DEMAND, SPOT, JobView, Placement, Policy, ZoneView, make

DEFAULT_RESTART_S = {True: 15.0, False: 360.0}  # until measured: emulated (local) backend, a cloud
RESTART_MARGIN = 1.5


@dataclass
class LivePolicy:
    policy: Policy
    zones: list[tuple[str, str]]
    spot_offers: list[Offer]
    od_offer: Offer | None
    steps: int
    default_restart_s: float
    tick: float
    every_steps: int | None
    every_minutes: float | None
    progress: object = None  # a controller.ProgressReader, made on first use

    @classmethod
    def for_job(cls, recipe, job, emulated: bool, tick: float) -> "LivePolicy":
        zones, spot_offers = [], []
        for o in job.offers:
            if o.spot and (o.cloud, o.region) not in zones:
                zones.append((o.cloud, o.region))
                spot_offers.append(o)
        od = next((o for o in job.offers if not o.spot), None)
        ck = recipe.train.checkpoints
        return cls(
            make(recipe.recovery.policy),
            zones,
            spot_offers,
            od,
            recipe.train.steps,
            DEFAULT_RESTART_S[bool(emulated)],
            tick,
            ck.every_steps,
            ck.every_minutes,
        )

    def _progress(self, attempts) -> tuple[int, int, float | None, float | None, dict]:
        """(committed step, newest step, step seconds, slowest restart, progress of the newest attempt)."""
        from .controller import ProgressReader

        if self.progress is None:
            self.progress = ProgressReader()
        committed = newest = 0
        step_s = restart = None
        last: dict = {}
        for a in attempts:
            d = (a.handle or {}).get("dir")
            prog = self.progress(Path(d)) if d else {}
            last = prog
            committed = max(committed, prog.get("saved", 0), prog.get("restored", 0) or 0)
            newest = max(newest, prog.get("step", 0) or 0)
            if prog.get("step_seconds"):
                step_s = prog["step_seconds"]
            if prog.get("first_step_time") is not None:
                r = prog["first_step_time"] - a.start
                restart = r if restart is None else max(restart, r)
        return committed, newest, step_s, restart, last

    def view(
        self, job, attempts, attempt, now: float, spot_ok: bool
    ) -> tuple[JobView, Placement, list[ZoneView]]:
        from .controller import stop_reserve

        committed, newest, step_s, restart, last = self._progress(attempts)
        if step_s is None:  # not measured yet: the plan's estimate for its best offer
            o = job.offers[0] if job.offers else None
            hours = (
                (o.on_demand_cost or 0.0) / o.on_demand_hourly
                if o and o.on_demand_hourly
                else (o and o.hours) or 1.0
            )
            step_s = hours * 3600 / max(self.steps, 1)
        overhead = restart * RESTART_MARGIN + self.tick if restart is not None else self.default_restart_s
        running_step = last.get("step") if attempt is not None else None
        done = max(committed, running_step or 0) if attempt is not None else committed
        intervals = [
            x
            for x in (
                self.every_steps and self.every_steps * step_s,
                self.every_minutes and self.every_minutes * 60,
            )
            if x
        ]
        ck = min(intervals) if intervals else None
        since = (
            max(0, (running_step or committed) - last.get("saved", committed)) * step_s
            if attempt is not None
            else 0.0
        )
        # the controller stops a job this long before its deadline to save a checkpoint
        reserve = stop_reserve(last, self.tick, step_s)
        left = job.deadline - now - reserve if job.deadline is not None else math.inf
        jv = JobView(
            self.steps * step_s,
            max(self.steps - done, 0) * step_s,
            now - job.created,
            left,
            overhead,
            self.tick,
            ck,
            since,
        )
        if attempt is None:
            at = Placement()
        else:
            kind = SPOT if attempt.spot else ON_DEMAND
            zone = (
                self.zones.index((attempt.cloud, attempt.region))
                if attempt.spot and (attempt.cloud, attempt.region) in self.zones
                else 0
            )
            started = running_step is not None
            at = Placement(
                kind,
                zone,
                0.0 if started else max(overhead - (now - attempt.start), self.tick),
                now - attempt.start,
            )
        od_price = self.od_offer.hourly if self.od_offer else math.inf
        zones = [
            ZoneView(f"{c}/{r}", spot_ok, o.hourly, od_price)
            for (c, r), o in zip(self.zones, self.spot_offers)
        ]
        if not zones:
            zones = [ZoneView("on-demand only", False, math.inf, od_price)]
        return jv, at, zones

    def next_offer(
        self, store, job, attempts, attempt, now: float, spot_ok: bool
    ) -> tuple[Offer | None, str]:
        """The offer the policy wants now (None: wait) and why, in a line for the event log."""
        jv, at, zones = self.view(job, attempts, attempt, now, spot_ok)
        d = self.policy.decide(jv, at, zones)
        slack = f"slack {jv.slack_s:.0f} s" if math.isfinite(jv.slack_s) else "no deadline"
        if d.kind == SPOT and self.spot_offers:
            o = self.spot_offers[d.zone or 0]
            return o, f"{self.policy.name}: spot in {o.cloud}/{o.region} ({slack})"
        if d.kind == ON_DEMAND:
            if self.od_offer is None:
                return (
                    None,
                    f"{self.policy.name}: wants on-demand but the plan has no on-demand offer ({slack})",
                )
            return (
                self.od_offer,
                f"{self.policy.name}: on-demand in {self.od_offer.cloud}/{self.od_offer.region} ({slack})",
            )
        return None, f"{self.policy.name}: waiting for spot ({slack})"
