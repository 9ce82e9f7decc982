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
LAUNCH_STALE = 600.0  # s: a reservation this old without its job was left by a fire that died


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
        raise SpotrainError(
            f"unknown time zone {name!r} — use an IANA name such as UTC or Europe/Berlin"
        ) from None


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


def run_cap(
    per_run: float | None,
    monthly: float | None,
    total: float | None,
    runs: list[PastRun],
    now: float,
    tz: str,
    recipe_cap: float | None = None,
) -> Cap:
    """The cap of a run launched at ``now``: the tightest of the per-run cap, the recipe's own
    ``budget.max_cost``, and what the month's and the schedule's budgets have left."""
    limits: list[tuple[float, str]] = []
    if per_run is not None:
        limits.append((per_run, "per-run cap"))
    if recipe_cap is not None:
        limits.append((recipe_cap, "recipe budget.max_cost"))
    if monthly is not None:
        used = committed(runs, month_start(now, tz))
        limits.append(
            (monthly - used, f"monthly budget (${monthly:.4g}, ${used:.4g} spent or committed this month)")
        )
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
def add(
    store: Store,
    *,
    name: str,
    recipe_path: str,
    overrides: list[str],
    backend: str,
    trigger: dict,
    timezone: str,
    max_cost_per_run: float | None,
    monthly_budget: float | None,
    total_budget: float | None,
    allow_overlap: bool,
    now: float,
) -> int:
    zone(timezone)
    for v, what in (
        (max_cost_per_run, "--max-cost"),
        (monthly_budget, "--monthly-budget"),
        (total_budget, "--total-budget"),
    ):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise SpotrainError(f"{what} must be a positive amount of dollars, not {v}")
    with store.session() as s, s.begin():
        sc = Schedule(
            name=name,
            recipe_path=recipe_path,
            overrides=list(overrides),
            backend=backend,
            trigger=trigger,
            timezone=timezone,
            max_cost_per_run=max_cost_per_run,
            monthly_budget=monthly_budget,
            total_budget=total_budget,
            allow_overlap=allow_overlap,
            enabled=True,
            created=now,
        )
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


def record(
    store: Store,
    schedule_id: int,
    now: float,
    outcome: str,
    job_id: int | None = None,
    cap: float | None = None,
    message: str = "",
) -> int:
    with store.session() as s, s.begin():
        r = ScheduleRun(
            schedule_id=schedule_id, time=now, outcome=outcome, job_id=job_id, cap=cap, message=message
        )
        s.add(r)
        s.flush()
        return r.id


def runs(store: Store, schedule_id: int) -> list[ScheduleRun]:
    with store.session() as s:
        return list(
            s.scalars(
                select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id).order_by(ScheduleRun.id)
            )
        )


def past_runs(store: Store, schedule_id: int, session=None) -> list[tuple[Job | None, PastRun]]:
    """The runs a schedule launched, with what each spent (ledger sum) or may still spend; and
    runs being launched right now (reserved, no job yet: live at their whole cap)."""

    def query(s) -> list:
        out = []
        rows = s.execute(
            select(ScheduleRun, Job)
            .outerjoin(Job, Job.id == ScheduleRun.job_id)
            .where(ScheduleRun.schedule_id == schedule_id, ScheduleRun.outcome.in_(("launched", "launching")))
            .order_by(ScheduleRun.id)
        ).all()
        for run, job in rows:
            if job is None:
                out.append((None, PastRun(run.time, True, 0.0, run.cap)))
                continue
            amounts = s.scalars(select(LedgerEntry.amount).where(LedgerEntry.job_id == job.id)).all()
            live = not JobStatus(job.status).is_terminal()
            out.append(
                (
                    job,
                    PastRun(
                        job.created,
                        live,
                        math.fsum(amounts),
                        run.cap if run.cap is not None else job.max_cost,
                    ),
                )
            )
        return out

    if session is not None:
        return query(session)
    with store.session() as s:
        return query(s)


def reserve(
    store: Store,
    schedule_id: int,
    now: float,
    recipe_cap: float | None,
    estimate: float,
    min_cap: float = 0.0,
) -> tuple[dict, int | None]:
    """Decide a run of the schedule at ``now`` and, if it may start, reserve its cap: a
    ``launching`` row that counts as a live run at its whole cap until ``settle``. One write
    transaction with the schedule's row locked (SQLite takes the database's write lock at BEGIN),
    so concurrent fires are serialized. Returns (outcome, reservation id or None when skipped)."""
    with store.session() as s, s.begin():
        sc = s.get(Schedule, schedule_id, with_for_update=True)
        if sc is None:
            raise SpotrainError(f"no schedule {schedule_id} — see `spotrain schedule list`")
        past = past_runs(store, schedule_id, session=s)
        # a reservation left by a fire that died mid-launch keeps counting its cap (its job may
        # exist, unlinked), but does not block later runs forever as an overlap
        live = [(job, r) for job, r in past if r.live and (job is not None or now - r.created < LAUNCH_STALE)]
        if live and not sc.allow_overlap:
            job = live[-1][0]
            what = (
                f"run {job.id} is still {job.status}"
                if job is not None
                else "another fire is launching a run"
            )
            return {"outcome": "skipped", "message": f"{what} (overlap not allowed)"}, None
        cap = run_cap(
            sc.max_cost_per_run,
            sc.monthly_budget,
            sc.total_budget,
            [r for _, r in past],
            now,
            sc.timezone,
            recipe_cap=recipe_cap,
        )
        if cap.reason:
            return {"outcome": "skipped", "message": cap.reason}, None
        if cap.cap is not None and cap.cap < min_cap:
            return {
                "outcome": "skipped",
                "message": f"the ${cap.cap:.4g} this run may spend ({cap.limit}) cannot make progress: "
                f"start-up, one checkpoint interval and a graceful stop need ${min_cap:.4g} — a cap of "
                f"at least ${min_cap:.4g} would work",
            }, None
        if cap.cap is not None and estimate > cap.cap:
            return {
                "outcome": "skipped",
                "message": f"the cheapest estimate ${estimate:.4g} exceeds the ${cap.cap:.4g} this "
                f"run may spend ({cap.limit})",
            }, None
        run = ScheduleRun(
            schedule_id=schedule_id,
            time=now,
            outcome="launching",
            job_id=None,
            cap=cap.cap,
            message="reserved; launching",
        )
        s.add(run)
        s.flush()
        return {"outcome": "launching", "cap": cap.cap, "limit": cap.limit}, run.id


def settle(store: Store, run_id: int, outcome: str, job_id: int | None, message: str) -> None:
    """Turn a reservation into the fire's record: ``launched`` with its job, or ``failed`` (its cap
    no longer counts)."""
    with store.session() as s, s.begin():
        run = s.get(ScheduleRun, run_id)
        run.outcome, run.job_id, run.message = outcome, job_id, message
