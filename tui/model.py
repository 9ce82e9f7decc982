"""What the TUI shows, read from the job store and the attempts' event logs — no Textual here.

The one join the other tools do not make: every logged training step gets the dollars the job
had spent when it was logged (the ledger, integrated up to the step's time), across every
attempt. So a loss curve can be drawn against money, and the steps a preemption threw away
(computed, lost, computed again) show up with what they cost.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from spotrain.jobs.states import JobStatus
from spotrain.jobs.store import Store
from spotrain.recipes.runtime.events import EventTail


@dataclass(frozen=True)
class JobRow:
    id: int
    name: str
    status: str
    backend: str
    attempts: int
    placement: str  # where the current (or last) attempt runs: "spot aws/us-east-1" or "-"
    step: int | None
    steps: int | None
    loss: float | None
    spend: float
    max_cost: float | None
    deadline: float | None
    created: float
    emulated: bool

    @property
    def terminal(self) -> bool:
        return JobStatus(self.status).is_terminal()


@dataclass(frozen=True)
class Point:
    step: int
    loss: float
    time: float
    attempt: int
    spend: float  # $ the job had spent when this was logged


@dataclass(frozen=True)
class AttemptRow:
    number: int
    where: str
    instance: str
    spot: bool
    price: float
    start: float
    end: float | None
    cost: float
    on_demand_cost: float
    end_reason: str | None
    steps: tuple[int | None, int | None]


@dataclass(frozen=True)
class JobDetail:
    row: JobRow
    train: tuple[Point, ...]  # every logged training step, in time order, all attempts
    val: tuple[Point, ...]  # evaluations
    spend_curve: tuple[tuple[float, float], ...]  # (time, $ so far) at each ledger entry's end
    attempts: tuple[AttemptRow, ...]
    events: tuple[tuple[float, str, str], ...]  # (time, kind, message), newest last
    on_demand_equivalent: float
    redone_steps: int  # steps trained more than once: the work preemptions threw away
    redone_cost: float  # what those lost steps cost when first trained
    tokens_per_s: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def savings(self) -> float:
        od = self.on_demand_equivalent
        return 1 - self.row.spend / od if od > 0 else 0.0


def _total_steps(recipe_yaml: str) -> int | None:
    try:
        return int(yaml.safe_load(recipe_yaml)["train"]["steps"])
    except (TypeError, KeyError, ValueError, yaml.YAMLError):
        return None


class EventReader:
    """Every complete event of attempts' events.jsonl files, kept up incrementally: each call
    parses only what was appended since the last (``EventTail``; a rewritten file is read again)."""

    def __init__(self):
        self._seen: dict[Path, tuple[EventTail, list[dict]]] = {}

    def __call__(self, path: Path) -> list[dict]:
        tail, events = self._seen.get(path) or (EventTail(path), [])
        new, reset = tail.read()
        if reset:
            events = []
        events.extend(new)
        self._seen[path] = (tail, events)
        return events


def read_events(path: Path) -> list[dict]:
    """Complete lines of one events.jsonl, read whole (a line still being written is skipped)."""
    return EventReader()(path)


class SpendClock:
    """$ spent by a time: the ledger's entries integrated, each linear over its interval."""

    def __init__(self, entries):
        rows = sorted((e.start, e.end, e.amount) for e in entries)
        self._ends = [r[1] for r in rows]
        self._rows = rows
        self._cum = [0.0]
        for _, _, amount in rows:
            self._cum.append(self._cum[-1] + amount)  # prefix sums for the finished entries
        self.total = math.fsum(r[2] for r in rows)

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self._ends, t)  # entries 0..i-1 ended by t
        done = self._cum[i]
        # entries are contiguous per attempt and attempts do not overlap, but be exact anyway:
        # any later entry that started before t counts pro rata
        part = 0.0
        for start, end, amount in self._rows[i:]:
            if start >= t:
                continue
            part += amount * (t - start) / (end - start) if end > start else amount
        return min(done + part, self.total)


def _row(store: Store, job, attempts, read=read_events) -> JobRow:
    cur = attempts[-1] if attempts else None
    prog = _last_step(cur, read)
    placement = "-"
    if cur is not None:
        placement = f"{'spot' if cur.spot else 'on-demand'} {cur.cloud}/{cur.region}"
    return JobRow(
        job.id,
        job.name,
        job.status,
        job.backend,
        len(attempts),
        placement,
        prog.get("step"),
        _total_steps(job.recipe_yaml),
        prog.get("loss"),
        store.spend(job.id),
        job.max_cost,
        job.deadline,
        job.created,
        job.backend == "local",
    )


def _last_step(attempt, read=read_events) -> dict:
    """The newest step event of an attempt."""
    if attempt is None or not (attempt.handle or {}).get("dir"):
        return {}
    return next(
        (
            ev
            for ev in reversed(read(Path(attempt.handle["dir"]) / "events.jsonl"))
            if ev.get("event") == "step"
        ),
        {},
    )


def job_rows(store: Store, read=read_events) -> list[JobRow]:
    """One row per job, newest first. ``read``: an EventReader to keep between refreshes."""
    return [_row(store, j, store.attempts(j.id), read) for j in reversed(store.jobs())]


def job_detail(store: Store, job_id: int, max_events: int = 200, read=read_events) -> JobDetail:
    job = store.job(job_id)
    attempts = store.attempts(job_id)
    clock = SpendClock(store.ledger(job_id))
    train: list[Point] = []
    val: list[Point] = []
    tps = None
    restored: dict[int, int] = {}
    for a in attempts:
        d = (a.handle or {}).get("dir")
        if not d:
            continue
        for ev in read(Path(d) / "events.jsonl"):
            kind = ev.get("event")
            if kind == "checkpoint_restored" and "step" in ev:
                restored[a.number] = int(ev["step"])
            if kind not in ("step", "eval") or "loss" not in ev or "step" not in ev:
                continue
            t = float(ev["time"])
            p = Point(int(ev["step"]), float(ev["loss"]), t, a.number, clock.at(t))
            (train if kind == "step" else val).append(p)
            if kind == "step" and ev.get("tokens_per_s") is not None:
                tps = float(ev["tokens_per_s"])
    train.sort(key=lambda p: p.time)
    val.sort(key=lambda p: p.time)
    redone, redone_cost = _redone(train, restored, clock, {a.number: a.start for a in attempts})
    rows = []
    for a in attempts:
        rows.append(
            AttemptRow(
                a.number,
                f"{a.cloud}/{a.region}",
                a.instance,
                bool(a.spot),
                a.price,
                a.start,
                a.end,
                a.cost,
                a.on_demand_price * (a.billed_until - a.start) / 3600,
                a.end_reason,
                (a.first_step, a.last_step),
            )
        )
    curve, run = [], 0.0
    for e in sorted(store.ledger(job_id), key=lambda e: e.end):
        run += e.amount
        curve.append((e.end, run))
    evs = store.events(job_id)[-max_events:]
    return JobDetail(
        _row(store, job, attempts, read),
        tuple(train),
        tuple(val),
        tuple(curve),
        tuple(rows),
        tuple((e.time, e.kind, e.message) for e in evs),
        math.fsum(r.on_demand_cost for r in rows),
        redone,
        redone_cost,
        tps,
    )


def _redone(
    train: list[Point], restored: dict[int, int], clock: SpendClock, starts: dict[int, float]
) -> tuple[int, float]:
    """Steps an attempt trained that the next training attempt trained again (it resumed from
    an older checkpoint, or from scratch), and what they cost the first time: the spend from when
    the lost attempt passed the restored step to its last logged step."""
    by_attempt: dict[int, list[Point]] = {}
    for p in train:
        by_attempt.setdefault(p.attempt, []).append(p)
    order = sorted(set(by_attempt) | set(restored))
    steps, cost = 0, 0.0
    for a, b in zip(order[:-1], order[1:]):
        pts = by_attempt.get(a)
        if not pts:
            continue
        back_to = restored.get(b, 0)
        last = pts[-1]
        if last.step <= back_to:
            continue
        steps += last.step - back_to
        passed = [p for p in pts if p.step <= back_to]
        cost += max(0.0, last.spend - (passed[-1].spend if passed else clock.at(starts[a])))
    return steps, cost


@dataclass(frozen=True)
class ScheduleSummary:
    active: int  # enabled schedules
    month_committed: float  # what their runs launched this month spent or may still spend
    monthly_budget: float | None  # the sum of their monthly budgets (None when one has none)


def schedule_summary(store: Store, now: float) -> ScheduleSummary | None:
    """The money side of the enabled schedules this month; None when there are none."""
    from spotrain.jobs import schedules

    active = [sc for sc in schedules.all_schedules(store) if sc.enabled]
    if not active:
        return None
    committed, budgets = [], []
    for sc in active:
        past = [r for _, r in schedules.past_runs(store, sc.id)]
        committed.append(schedules.committed(past, schedules.month_start(now, sc.timezone)))
        budgets.append(sc.monthly_budget)
    return ScheduleSummary(len(active), math.fsum(committed), None if None in budgets else math.fsum(budgets))
