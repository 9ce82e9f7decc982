"""Scheduled retraining: ``fire`` launches one run of a schedule under its budgets; ``run`` is the
daemon (APScheduler 3) that fires every enabled schedule on its trigger.

APScheduler keeps each schedule's next fire time in its own table of the job database
(``apscheduler_jobs``, SQLAlchemyJobStore), so a fire missed while the daemon was down runs once
when it comes back (coalesced; within ``misfire_grace`` seconds), and never twice. The stored
job function is ``spotrain.jobs.scheduler:fire`` — a module-level callable, as a persistent
store requires. Which schedules exist is spotrain's ``schedules`` table; the daemon reconciles
APScheduler's jobs with it every ``poll`` seconds, so `spotrain schedule add/pause/remove` take
effect without a restart.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import signal
import threading
import time
from datetime import datetime, timezone

from spotrain.errors import SpotrainError

from . import schedules

log = logging.getLogger("spotrain.scheduler")

LOCAL_OPTIONS = {"grace": 120.0, "seed": 0, "trace_speed": 3600.0}


def _home():
    from spotrain.pricing.catalog import spotrain_home

    d = spotrain_home()
    d.mkdir(parents=True, exist_ok=True)
    return d


def fire(schedule_id: int, now: float | None = None) -> dict:
    """Launch one run of the schedule now, or record why not. Returns the recorded outcome.
    Never raises for a problem of the schedule (the daemon keeps going); it is recorded instead."""
    from . import service

    store = service.open_store()
    now = time.time() if now is None else now
    try:
        sc = schedules.get(store, schedule_id)
    except SpotrainError as e:
        log.warning("%s", e)
        return {"outcome": "missing", "message": str(e)}
    run_id = None
    try:
        out, run_id = _fire(store, sc, now)
    except SpotrainError as e:
        out = {"outcome": "failed", "message": str(e)}
    except Exception as e:  # noqa: BLE001 — a broken run must not stop the daemon; the message is kept
        out = {"outcome": "failed", "message": f"internal error: {type(e).__name__}: {e}"}
    if run_id is None:
        schedules.record(
            store, schedule_id, now, out["outcome"], out.get("job"), out.get("cap"), out.get("message", "")
        )
    else:  # the reservation made for this run becomes its record (a failed launch frees its cap)
        schedules.settle(store, run_id, out["outcome"], out.get("job"), out.get("message", ""))
    if out["outcome"] == "launched":
        service.start_controller(out["job"])
    log.info("schedule %s (%s): %s %s", schedule_id, sc.name, out["outcome"], out.get("message", ""))
    return out


def _fire(store, sc, now: float) -> tuple[dict, int | None]:
    """(outcome, id of the reservation row or None). The cap is decided and reserved in one write
    transaction of the job database, with the schedule's row locked: fires of one schedule from any
    process or host see each other's reservations, so two cannot both spend the same remainder."""
    from spotrain.recipes.loader import load_recipe

    from .planning import plan_offers

    from . import service

    if not sc.enabled:
        return {"outcome": "skipped", "message": "schedule is paused"}, None
    loaded = load_recipe(sc.recipe_path, list(sc.overrides))
    from .limits import viable_cap

    planned = plan_offers(loaded, sc.backend, live=True)  # slow: before taking the lock
    offers, best, sky = planned.offers, planned.best, planned.sky
    decided, run_id = schedules.reserve(
        store,
        sc.id,
        now,
        loaded.recipe.budget.max_cost,
        best.cost,
        min_cap=viable_cap(loaded.recipe, best, sc.backend),
    )
    if run_id is None:
        return decided, None
    cap = decided["cap"]
    if cap is not None:
        loaded = load_recipe(sc.recipe_path, list(sc.overrides) + [f"budget.max_cost={cap!r}"])
    options = dict(LOCAL_OPTIONS) if sc.backend == "local" else {}
    try:
        job_id = service.create(store, loaded, sc.backend, offers, options, now, sky=sky)
    except Exception as e:
        return {
            "outcome": "failed",
            "message": str(e) if isinstance(e, SpotrainError) else f"internal error: {e!r}",
        }, run_id
    where = f"{best.cloud}/{best.region} {best.instance} {'spot' if best.spot else 'on-demand'}"
    limit = f"cap ${cap:.4g} ({decided['limit']})" if cap is not None else "no cap"
    store.event(job_id, "schedule", f"launched by schedule {sc.id} ({sc.name}); {limit}", now)
    return {
        "outcome": "launched",
        "job": job_id,
        "cap": cap,
        "message": f"job {job_id} on {where}, {limit}",
    }, run_id


# ---------------------------------------------------------------------- triggers
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday, 1 = Monday) in APScheduler 3's terms, where 0 is
    Monday — its ``from_crontab`` passes the numbers through, so '1' would fire on Tuesdays.
    Numbers, ranges and steps become explicit day names."""
    if field == "*":
        return field
    out: list[str] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        n = int(step) if step else 1
        if n < 1:
            raise ValueError(f"step {step!r} in the weekday field")
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            lo, hi = _day(a), _day(b)
            if hi == 0 and lo > 0:
                hi = 7  # '5-7', 'fri-sun'
        else:
            lo = hi = _day(base)
            if step:
                hi = 6
        if lo > hi:
            raise ValueError(f"weekday range {base!r} runs backwards")
        out += [_DAYS[d % 7] for d in range(lo, hi + 1, n)]
    return ",".join(dict.fromkeys(out))


def _day(tok: str) -> int:
    tok = tok.strip().lower()
    if tok[:3] in _DAYS and not tok.isdigit():
        return _DAYS.index(tok[:3])
    d = int(tok)
    if not 0 <= d <= 7:
        raise ValueError(f"weekday {tok!r} is not 0-7")
    return d


def cron_trigger(expr: str, tz):
    """A standard 5-field crontab line as an APScheduler trigger (weekdays numbered as cron does)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ValueError(
            "restrict the day of month or the weekday, not both (cron would fire on either, "
            "APScheduler only on both) — use two schedules"
        )
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(dow), timezone=tz
    )


def trigger_of(sc):
    from apscheduler.triggers.interval import IntervalTrigger

    tz = schedules.zone(sc.timezone)
    if "cron" in sc.trigger:
        return cron_trigger(sc.trigger["cron"], tz)
    return IntervalTrigger(
        seconds=float(sc.trigger["every"]), start_date=datetime.fromtimestamp(sc.created, tz), timezone=tz
    )


def parse_trigger(cron: str | None, every: str | None) -> dict:
    """``--cron`` / ``--every`` as stored, checked now (a bad one is refused at `schedule add`)."""
    if (cron is None) == (every is None):
        raise SpotrainError(
            "give exactly one of --cron 'MIN HOUR DAY MONTH WEEKDAY' or --every DURATION (e.g. 6h)"
        )
    if cron is not None:
        try:
            cron_trigger(cron, "UTC")
        except ValueError as e:
            raise SpotrainError(
                f"--cron {cron!r}: {e} — five fields: minute hour day-of-month month day-of-week"
            ) from None
        return {"cron": cron}
    from spotrain.units import parse_seconds

    seconds = parse_seconds(every)
    if not (seconds >= 1 and math.isfinite(seconds)):
        raise SpotrainError(f"--every {every!r}: at least 1 s")
    return {"every": seconds}


def next_fires(sc, now: float, n: int = 1) -> list[float]:
    """The next ``n`` fire times of a schedule after ``now`` (Unix seconds)."""
    trig = trigger_of(sc)
    out, prev = [], None
    t = datetime.fromtimestamp(now, timezone.utc)
    for _ in range(n):
        nxt = trig.get_next_fire_time(prev, t)
        if nxt is None:
            break
        out.append(nxt.timestamp())
        prev, t = nxt, nxt
    return out


# ---------------------------------------------------------------------- the daemon
def status_file():
    return _home() / "scheduler.json"


def daemon_status(now: float, stale_after: float) -> dict | None:
    """The running daemon's pid and last heartbeat, or None when none is alive."""
    try:
        st = json.loads(status_file().read_text())
        os.kill(int(st["pid"]), 0)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return st if now - float(st.get("heartbeat", 0)) <= stale_after else None


def sync(sched, store) -> None:
    """Make APScheduler's jobs match the enabled schedules (added, removed, trigger changed)."""
    want = {f"schedule-{sc.id}": sc for sc in schedules.all_schedules(store) if sc.enabled}
    have = {j.id: j for j in sched.get_jobs(jobstore="default")}
    for jid in have.keys() - want.keys():
        sched.remove_job(jid, jobstore="default")
        log.info("schedule job %s removed", jid)
    for jid, sc in want.items():
        trig = trigger_of(sc)
        if jid not in have:
            sched.add_job(fire, trig, args=[sc.id], id=jid, name=sc.name, jobstore="default")
            log.info("schedule %s (%s) added: %s", sc.id, sc.name, trig)
        elif str(have[jid].trigger) != str(trig):
            sched.reschedule_job(jid, jobstore="default", trigger=trig)
    status_file().write_text(json.dumps({"pid": os.getpid(), "heartbeat": time.time(), "jobs": sorted(want)}))


WATCH_S = 5.0


def watch_controllers(store) -> None:
    """Adopt every unfinished job whose controller stopped heartbeating (the daemon's interval job)."""
    from . import service

    for job_id in service.ensure_controllers(store):
        log.warning("job %s: controller not heartbeating; started a new one", job_id)


def run(poll: float = 30.0, misfire_grace: float = 3600.0) -> None:
    """The scheduler daemon, in the foreground until SIGTERM/SIGINT. One per job database."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from . import service
    from .db import default_url

    d = _home() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    lock = open(d / "scheduler.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        st = daemon_status(time.time(), math.inf) or {}
        raise SpotrainError(
            f"a scheduler already runs for this job database (pid {st.get('pid', '?')}) — one is enough"
        ) from None
    store = service.open_store()
    sched = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=default_url()), "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(misfire_grace)},
        timezone="UTC",
    )
    stopping = threading.Event()

    def stop(signum, frame):  # noqa: ARG001
        log.info("signal %s: stopping the scheduler", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        sched.start()  # loads the persisted jobs: fires missed while down run now (once, coalesced)
        sync(sched, store)
        sched.add_job(sync, "interval", seconds=poll, args=[sched, store], id="sync", jobstore="memory")
        # every job's controller is watched here too, so a dead one is replaced without any CLI command
        sched.add_job(
            watch_controllers, "interval", seconds=WATCH_S, args=[store], id="watch", jobstore="memory"
        )
        log.info(
            "scheduler running (pid %s, %d schedule(s))", os.getpid(), len(sched.get_jobs(jobstore="default"))
        )
        while not stopping.wait(1.0):
            pass
    finally:
        if sched.running:
            sched.shutdown(wait=True)  # a fire in progress finishes its launch
        try:
            status_file().unlink()
        except OSError:
            pass
        lock.close()


def month_summary(store, sc, now: float) -> dict:
    """What a schedule's runs spent or committed this month and in total, against its budgets."""
    past = [r for _, r in schedules.past_runs(store, sc.id)]
    return {
        "month": schedules.committed(past, schedules.month_start(now, sc.timezone)),
        "total": schedules.committed(past),
        "spent_month": math.fsum(
            r.spend for r in past if r.created >= schedules.month_start(now, sc.timezone)
        ),
        "live": sum(r.live for r in past),
        "runs": len(past),
    }
