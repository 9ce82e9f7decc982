"""Schedules: a recipe retrained on a trigger, under money limits that hold across runs.

Budget rule (pure, ``run_cap``): a run may only be launched with a cap (its
``budget.max_cost``) that fits every limit of its schedule *counting what earlier runs may still
spend*. A finished run counts what it spent; a live run counts its whole cap (it may yet spend
it). A run's cost counts in the month it was launched (in the schedule's time zone), so a month's
runs together stay within the monthly budget, and all runs within the total one — whatever the
runs do, since each one's own cap stops it (up to the one billing tick by which any job may pass
its cap). Time is a parameter everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from spotrain.errors import SpotrainError

from .db import Job, LedgerEntry, Schedule, ScheduleRun
from .states import JobStatus
from .store import Store

MIN_CAP = 0.0001  # $: below this a run could not even be billed one tick — skip instead


@dataclass(frozen=True)
class PastRun:
    created: float
    live: bool
    spend: float
    cap: float | None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpotrainError(f"unknown time zone {name!r} — use an IANA name such as UTC or Europe/Berlin") from None


def month_start(now: float, tz: str) -> float:
    """Unix time of the first instant of ``now``'s calendar month in ``tz``."""
    d = datetime.fromtimestamp(now, zone(tz))
    return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def committed(runs: list[PastRun], since: float = -math.inf) -> float:
    """What the runs launched since ``since`` have spent or may still spend."""
    total = []
    for r in runs:
        if r.created < since:
            continue
        if r.live:
            total.append(math.inf if r.cap is None else max(r.spend, r.cap))
        else:
            total.append(r.spend)
    return math.fsum(total)


@dataclass(frozen=True)
class Cap:
    cap: float | None  # the run's budget.max_cost; None: no limit at all
    reason: str = ""  # why no run may start (empty: it may)
    limit: str = ""  # which limit set the cap


def run_cap(per_run: float | None, monthly: float | None, total: float | None, runs: list[PastRun], now: float, tz: str,
            recipe_cap: float | None = None) -> Cap:
    """The cap of a run launched at ``now``: the tightest of the per-run cap, the recipe's own
    ``budget.max_cost``, and what the month's and the schedule's budgets have left."""
    limits: list[tuple[float, str]] = []
    if per_run is not None:
        limits.append((per_run, "per-run cap"))
    if recipe_cap is not None:
        limits.append((recipe_cap, "recipe budget.max_cost"))
    if monthly is not None:
        used = committed(runs, month_start(now, tz))
        limits.append((monthly - used, f"monthly budget (${monthly:.4g}, ${used:.4g} spent or committed this month)"))
    if total is not None:
        used = committed(runs)
        limits.append((total - used, f"total budget (${total:.4g}, ${used:.4g} spent or committed)"))
    if not limits:
        return Cap(None)
    cap, which = min(limits, key=lambda x: x[0])
    if cap < MIN_CAP:
        return Cap(None, f"{which} has nothing left", which)
    return Cap(cap, "", which)


# ---------------------------------------------------------------------- store operations
def add(store: Store, *, name: str, recipe_path: str, overrides: list[str], backend: str, trigger: dict, timezone: str,
        max_cost_per_run: float | None, monthly_budget: float | None, total_budget: float | None, allow_overlap: bool,
        now: float) -> int:
    zone(timezone)
    for v, what in ((max_cost_per_run, "--max-cost"), (monthly_budget, "--monthly-budget"), (total_budget, "--total-budget")):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise SpotrainError(f"{what} must be a positive amount of dollars, not {v}")
    with store.session() as s, s.begin():
        sc = Schedule(name=name, recipe_path=recipe_path, overrides=list(overrides), backend=backend, trigger=trigger,
                      timezone=timezone, max_cost_per_run=max_cost_per_run, monthly_budget=monthly_budget,
                      total_budget=total_budget, allow_overlap=allow_overlap, enabled=True, created=now)
        s.add(sc)
        s.flush()
        return sc.id


def get(store: Store, schedule_id: int) -> Schedule:
    with store.session() as s:
        sc = s.get(Schedule, schedule_id)
        if sc is None:
            raise SpotrainError(f"no schedule {schedule_id} — see `spotrain schedule list`")
        return sc


def all_schedules(store: Store) -> list[Schedule]:
    with store.session() as s:
        return list(s.scalars(select(Schedule).order_by(Schedule.id)))


def set_enabled(store: Store, schedule_id: int, enabled: bool) -> None:
    get(store, schedule_id)
    with store.session() as s, s.begin():
        s.get(Schedule, schedule_id).enabled = enabled


def remove(store: Store, schedule_id: int) -> None:
    """Delete a schedule and its fire history (its jobs stay, with their ledgers)."""
    get(store, schedule_id)
    with store.session() as s, s.begin():
        for r in s.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)):
            s.delete(r)
        s.delete(s.get(Schedule, schedule_id))


def record(store: Store, schedule_id: int, now: float, outcome: str, job_id: int | None = None, cap: float | None = None,
           message: str = "") -> int:
    with store.session() as s, s.begin():
        r = ScheduleRun(schedule_id=schedule_id, time=now, outcome=outcome, job_id=job_id, cap=cap, message=message)
        s.add(r)
        s.flush()
        return r.id


def runs(store: Store, schedule_id: int) -> list[ScheduleRun]:
    with store.session() as s:
        return list(s.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id).order_by(ScheduleRun.id)))


def past_runs(store: Store, schedule_id: int) -> list[tuple[Job, PastRun]]:
    """The jobs a schedule launched, with what each spent (ledger sum) or may still spend."""
    out = []
    with store.session() as s:
        rows = s.execute(select(ScheduleRun.cap, Job).join(Job, Job.id == ScheduleRun.job_id)
                         .where(ScheduleRun.schedule_id == schedule_id, ScheduleRun.outcome == "launched")).all()
        for cap, job in rows:
            amounts = s.scalars(select(LedgerEntry.amount).where(LedgerEntry.job_id == job.id)).all()
            live = not JobStatus(job.status).is_terminal()
            out.append((job, PastRun(job.created, live, math.fsum(amounts), cap if cap is not None else job.max_cost)))
    return out
