"""The TUI: its data join (loss against dollars across attempts, work lost to preemptions), the
Braille charts, and the Textual app driven by Pilot over a real SQLite job store whose attempts'
event logs are written by the runtime's own EventLog."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from pathlib import Path

import pytest
import yaml
from rich.text import Text

from spotrain.pricing.offer import Offer
from spotrain.jobs.db import connect
from spotrain.jobs.states import EndReason, JobStatus
from spotrain.jobs.store import Store
from spotrain.recipes.runtime.events import EventLog
from spotrain.tui import chart, model

T0 = 1_780_000_000.0  # a fixed epoch: the screen is reproducible
SPOT = Offer(
    "aws", "us-east-1", "", "g5.xlarge", "A10G", 1, 4, 16, spot=True, hourly=0.36, on_demand_hourly=1.006
)
OD = Offer(
    "aws", "us-west-2", "", "g5.xlarge", "A10G", 1, 4, 16, spot=False, hourly=1.006, on_demand_hourly=1.006
)


def _advance(store: Store, job: int, *path: JobStatus, now: float) -> None:
    for s in path:
        store.transition(job, s, now)


def _attempt(
    store: Store,
    tmp: Path,
    job: int,
    offer: dict,
    start: float,
    steps: range,
    restored: int | None,
    end: float | None,
    reason: EndReason | None,
    step_s: float = 60.0,
) -> int:
    """An attempt that trains ``steps`` one per ``step_s`` (events by the runtime's EventLog), billed
    every 30 s as the controller does, ended at ``end`` (or still running)."""
    a = store.start_attempt(job, offer, "local", emulated=True, now=start)
    d = tmp / f"job{job}-attempt{a}"
    store.set_handle(a, {"dir": str(d)})
    now = [start]
    log = EventLog(d / "events.jsonl", clock=lambda: now[0])
    if restored is not None:
        log.emit("checkpoint_restored", step=restored, path="x", tokens_seen=0)
    for i, s in enumerate(steps):
        now[0] = start + (i + 1) * step_s
        log.emit(
            "step",
            step=s,
            loss=round(4.0 * math.exp(-s / 150) + 1.0, 4),
            lr=1e-3,
            grad_norm=1.0,
            tokens=s * 4096,
            tokens_per_s=1234.5,
            epoch=0.1,
        )
        if s % 100 == 0:
            log.emit(
                "eval", step=s, loss=round(4.2 * math.exp(-s / 150) + 1.1, 4), perplexity=3.0, accuracy=0.4
            )
    log.close()
    stop = end if end is not None else start + len(steps) * step_s
    t = start
    while t < stop:
        t = min(stop, t + 30.0)
        store.bill(a, t)
    if steps:
        store.set_steps(a, steps[0], steps[-1])
    if end is not None:
        store.end_attempt(a, reason, None, end)
    return a


@pytest.fixture
def store(tmp_path) -> Store:
    """Three jobs: one finished cleanly, one preempted on spot and resumed on on-demand (running),
    one cancelled before it started."""
    st = Store(connect(f"sqlite:///{tmp_path / 'jobs.db'}"))
    recipe = yaml.safe_dump({"name": "tiny-gpt", "train": {"steps": 600}})

    def job(name, cap, deadline=None):
        return st.create_job(
            name=name,
            backend="local",
            recipe_yaml=recipe,
            recipe_dir=str(tmp_path),
            offers=[SPOT, OD],
            options={},
            workdir=str(tmp_path),
            max_cost=cap,
            deadline=deadline,
            now=T0,
        )

    j1 = job("done-run", 1.0)
    _advance(st, j1, JobStatus.PROVISIONING, JobStatus.RUNNING, now=T0)
    _attempt(st, tmp_path, j1, SPOT, T0, range(10, 301, 10), None, T0 + 30 * 60 + 20, EndReason.SUCCEEDED)
    _advance(st, j1, JobStatus.SUCCEEDED, now=T0 + 30 * 60 + 20)

    j2 = job("preempted-run", 2.0, deadline=T0 + 6 * 3600)
    _advance(st, j2, JobStatus.PROVISIONING, JobStatus.RUNNING, now=T0)
    # attempt 1 trains to step 250, checkpointed at 200, preempted; attempt 2 restores 200
    _attempt(st, tmp_path, j2, SPOT, T0, range(10, 251, 10), None, T0 + 25 * 60 + 10, EndReason.PREEMPTED)
    _advance(
        st,
        j2,
        JobStatus.PREEMPTED,
        JobStatus.RECOVERING,
        JobStatus.PROVISIONING,
        JobStatus.RUNNING,
        now=T0 + 26 * 60,
    )
    _attempt(st, tmp_path, j2, OD, T0 + 26 * 60, range(210, 401, 10), 200, None, None)

    j3 = job("cancelled-early", None)
    _advance(st, j3, JobStatus.CANCELLED, now=T0 + 60)
    return st


# ---------------------------------------------------------------------- the data join
def test_rows_newest_first_with_progress_spend_and_placement(store):
    rows = model.job_rows(store)
    assert [r.name for r in rows] == ["cancelled-early", "preempted-run", "done-run"]
    live = rows[1]
    assert (live.status, live.attempts, live.placement) == ("RUNNING", 2, "on-demand aws/us-west-2")
    assert (live.step, live.steps) == (400, 600)
    assert live.loss == pytest.approx(4.0 * math.exp(-400 / 150) + 1.0, abs=1e-4)
    assert live.spend == pytest.approx(store.spend(live.id))
    assert rows[0].placement == "-" and rows[0].step is None and rows[0].terminal


def test_every_step_gets_the_dollars_spent_when_it_was_logged(store):
    job = next(r.id for r in model.job_rows(store) if r.name == "preempted-run")
    d = model.job_detail(store, job)
    assert [p.attempt for p in d.train] == [1] * 25 + [2] * 20
    assert [p.time for p in d.train] == sorted(p.time for p in d.train)
    ledger = store.ledger(job)
    for p in d.train:  # the ledger integrated up to the step's time, independently here
        want = math.fsum(
            e.amount * min(1.0, max(0.0, (p.time - e.start) / (e.end - e.start))) for e in ledger
        )
        assert p.spend == pytest.approx(want, rel=1e-9, abs=1e-12)
    spends = [p.spend for p in d.train]
    assert spends == sorted(spends) and spends[0] > 0
    # step 10 at one minute of spot: 0.36 $/h / 60
    assert d.train[0].spend == pytest.approx(0.36 / 60)
    assert [p.step for p in d.val] == [100, 200, 300, 400]
    assert d.spend_curve[-1][1] == pytest.approx(store.spend(job))
    assert d.tokens_per_s == pytest.approx(1234.5)


def test_work_lost_to_a_preemption_is_counted_with_its_cost(store):
    job = next(r.id for r in model.job_rows(store) if r.name == "preempted-run")
    d = model.job_detail(store, job)
    assert d.redone_steps == 50  # attempt 1 reached 250, attempt 2 went back to 200
    first = [p for p in d.train if p.attempt == 1]
    at = {p.step: p.spend for p in first}
    assert d.redone_cost == pytest.approx(at[250] - at[200])
    assert d.redone_cost == pytest.approx(0.36 * 5 / 60)  # five minutes of spot
    assert d.on_demand_equivalent == pytest.approx(math.fsum(a.on_demand_cost for a in d.attempts))
    assert 0 < d.savings < 1


def test_a_restart_from_scratch_loses_everything_the_attempt_trained(tmp_path):
    st = Store(connect(f"sqlite:///{tmp_path / 'jobs.db'}"))
    j = st.create_job(
        name="x",
        backend="local",
        recipe_yaml="train: {steps: 100}",
        recipe_dir=".",
        offers=[],
        options={},
        workdir=".",
        max_cost=None,
        deadline=None,
        now=T0,
    )
    _attempt(st, tmp_path, j, SPOT, T0, range(10, 61, 10), None, T0 + 400, EndReason.PREEMPTED)
    _attempt(st, tmp_path, j, SPOT, T0 + 500, range(10, 31, 10), None, None, None)
    d = model.job_detail(st, j)
    assert d.redone_steps == 60
    assert d.redone_cost == pytest.approx(0.36 * 360 / 3600)  # start of attempt 1 to its step 60


def test_a_line_being_written_is_not_read(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text('{"event":"step","step":1,"loss":2.0,"time":1}\n{"event":"step","st')
    assert [e["step"] for e in model.read_events(p)] == [1]
    assert model.read_events(tmp_path / "missing.jsonl") == []


def test_event_reader_parses_only_what_was_appended_and_rereads_a_rewritten_file(tmp_path):
    p = tmp_path / "events.jsonl"
    read = model.EventReader()
    assert read(p) == []
    p.write_text('{"step":1}\n{"step":2}\n{"st')
    first = read(p)
    assert [e["step"] for e in first] == [1, 2]
    with open(p, "a") as fh:
        fh.write('ep":3}\n{"step":4}\n')
    assert [e["step"] for e in read(p)] == [1, 2, 3, 4]  # the half line completed, nothing parsed twice
    assert read(p) is first  # the same list, grown in place: no re-parse
    p.write_text('{"step":9}\n')  # rewritten (shorter)
    assert [e["step"] for e in read(p)] == [9]


def test_spend_clock_is_exact_inside_and_between_entries():
    class E:
        def __init__(self, start, end, amount):
            self.start, self.end, self.amount = start, end, amount

    c = model.SpendClock([E(0, 10, 1.0), E(10, 20, 3.0), E(50, 60, 2.0)])
    assert [c.at(t) for t in (-1, 0, 5, 10, 15, 30, 55, 60, 99)] == pytest.approx(
        [0, 0, 0.5, 1, 2.5, 4, 5, 6, 6]
    )


# ---------------------------------------------------------------------- charts
def _dots(text: Text) -> set[tuple[int, int]]:
    """(x, y) of every Braille dot drawn, y down, in dot units (2 × 4 per cell)."""
    bits = {
        0x01: (0, 0),
        0x02: (0, 1),
        0x04: (0, 2),
        0x08: (1, 0),
        0x10: (1, 1),
        0x20: (1, 2),
        0x40: (0, 3),
        0x80: (1, 3),
    }
    out = set()
    for r, line in enumerate(text.plain.split("\n")):
        for c, ch in enumerate(line):
            if 0x2800 < ord(ch) <= 0x28FF:
                for bit, (dx, dy) in bits.items():
                    if (ord(ch) - 0x2800) & bit:
                        out.add((2 * c + dx, 4 * r + dy))
    return out


def test_chart_draws_a_joined_line_between_its_points_and_labels_the_axes():
    t = chart.plot([chart.Series([(0, 0), (10, 10)])], width=16, height=6)
    lines = t.plain.split("\n")
    assert len(lines) == 6 and lines[0].startswith("10.00┤") and lines[3].startswith("    0┤")
    assert lines[4].lstrip().startswith("└") and lines[5].split() == ["0", "10.00"]
    dots = _dots(t)
    xs = sorted(x for x, _ in dots)
    lw = len("10.00┤")
    # a diagonal from bottom-left to top-right, every column of dots filled once
    assert xs == list(range(2 * lw, 2 * lw + 2 * (16 - lw)))
    top = min(dots, key=lambda d: d[1])
    bottom = max(dots, key=lambda d: d[1])
    assert top[0] > bottom[0] and top[1] == 0 and bottom[1] == 4 * 4 - 1


def test_chart_colours_each_series_and_handles_flat_and_empty_data():
    t = chart.plot(
        [chart.Series([(0, 1), (1, 1)], "green"), chart.Series([(2, 5)], "yellow")], width=30, height=6
    )
    styles = {str(s.style) for s in t.spans}
    assert {"green", "yellow"} <= styles
    flat = chart.plot([chart.Series([(0, 2.0), (5, 2.0)])], width=20, height=5)
    assert (
        len(_dots(flat)) > 0 and "3.00" in flat.plain and "1.00" in flat.plain
    )  # a flat line sits mid-chart
    assert chart.plot([], 20, 5, empty="nothing yet").plain == "nothing yet"


# ---------------------------------------------------------------------- the app (Pilot)
def pilot_test(fn):
    """Run an async Pilot test on its own event loop (no asyncio plugin needed)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return run


def _app(store, **kw):
    from spotrain.tui.app import SpotrainApp

    return SpotrainApp(store, clock=lambda: T0 + 3600, refresh=0, **kw)


def _static(app, sel) -> str:
    from textual.widgets import Static

    r = app.query_one(sel, Static).render()  # the charts render at their laid-out size
    return r.plain if isinstance(r, Text) else str(r)


@pilot_test
async def test_app_lists_jobs_and_follows_the_highlighted_one(store):
    from textual.widgets import DataTable

    app = _app(store)
    async with app.run_test(size=(140, 44)) as pilot:
        jobs = app.query_one("#jobs", DataTable)
        assert jobs.row_count == 3
        assert [str(jobs.get_row_at(i)[1]) for i in range(3)] == [
            "cancelled-early",
            "preempted-run",
            "done-run",
        ]
        assert "3 jobs, 1 live" in app.sub_title
        assert "job 3 cancelled-early" in _static(app, "#summary")
        await pilot.press("down")
        await pilot.pause()
        summary = _static(app, "#summary")
        assert "job 2 preempted-run" in summary and "attempt 2 on on-demand aws/us-west-2" in summary
        assert "lost to preemptions: 50 steps trained twice" in summary
        assert "deadline in 5.0 h" in summary  # the clock is an hour after launch, the deadline six
        d = model.job_detail(store, 2)
        assert f"spent ${d.row.spend:.4f} of $2.00" in summary
        att = app.query_one("#attempts", DataTable)
        assert (
            att.row_count == 2
            and str(att.get_row_at(0)[7]) == "preempted"
            and str(att.get_row_at(1)[7]) == "running"
        )
        assert "loss vs step" in str(app.query_one("#loss").border_title)
        assert chr(0x2800) < max(_static(app, "#loss"))  # the curve is drawn
        assert "400" in _static(app, "#loss")  # x axis ends at the newest step
        await pilot.press("x")
        assert "loss vs $ spent" in str(app.query_one("#loss").border_title)
        assert f"${d.train[-1].spend:.4f}" in _static(app, "#loss")  # x axis ends at the $ of the newest step


@pilot_test
async def test_cancel_needs_a_second_press_and_reaches_the_store(store):
    app = _app(store, job_id=2)
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        assert store.job(2).requested is None  # first press only asks
        await pilot.press("c")
        await pilot.pause()
        assert store.job(2).requested == "cancel"
        assert store.events(2)[-1].kind == "request"


@pilot_test
async def test_cancel_is_refused_for_an_ended_job_and_a_moved_cursor_disarms(store):
    app = _app(store, job_id=3)
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("c", "c")
        await pilot.pause()
        assert store.job(3).requested is None
        await pilot.press("down", "p", "up", "down", "p")  # armed on job 2, moved away and back: asks again
        await pilot.pause()
        assert store.job(2).requested is None
        await pilot.press("p")
        await pilot.pause()
        assert store.job(2).requested == "preempt"


@pilot_test
async def test_refresh_shows_new_jobs_and_new_spend(store, tmp_path):
    from textual.widgets import DataTable

    app = _app(store, job_id=2)
    async with app.run_test(size=(140, 44)) as pilot:
        before = model.job_detail(store, 2).row.spend
        a = store.current_attempt(2)
        store.bill(a.id, a.billed_until + 3600)  # an hour more on-demand
        store.create_job(
            name="fresh",
            backend="local",
            recipe_yaml="{}",
            recipe_dir=".",
            offers=[],
            options={},
            workdir=".",
            max_cost=None,
            deadline=None,
            now=T0 + 3000,
        )
        await pilot.press("r")
        await pilot.pause()
        jobs = app.query_one("#jobs", DataTable)
        assert jobs.row_count == 4 and str(jobs.get_row_at(0)[1]) == "fresh"
        assert "job 2 preempted-run" in _static(app, "#summary")  # the cursor stayed on its job
        assert f"spent ${before + 1.006:.2f}" in _static(app, "#summary")


@pilot_test
async def test_an_empty_store_says_how_to_start(tmp_path):
    app = _app(Store(connect(f"sqlite:///{tmp_path / 'empty.db'}")))
    async with app.run_test(size=(100, 30)):
        assert "No jobs yet" in _static(app, "#summary")


def test_screen_snapshot(store, snap_compare, monkeypatch):
    """The whole screen on the preempted job, after switching the loss chart to dollars
    (pytest-textual-snapshot; after a deliberate change: pytest tests/test_tui.py --snapshot-update)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert snap_compare(_app(store, job_id=2), press=["x"], terminal_size=(140, 44))
    finally:
        monkeypatch.undo()
        time.tzset()


def test_cli_refuses_an_unknown_job_in_one_line():
    from conftest import spotrain

    r = spotrain("tui", "987654")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == ["error: no job 987654 — see `spotrain status` for job ids"]
    assert "Traceback" not in r.stderr + r.stdout


@pilot_test
async def test_header_shows_what_the_schedules_committed_this_month(store, tmp_path):
    from spotrain.jobs import schedules

    a = schedules.add(
        store,
        name="nightly",
        recipe_path=str(tmp_path / "r.yaml"),
        overrides=[],
        backend="local",
        trigger={"cron": "0 3 * * *"},
        timezone="UTC",
        max_cost_per_run=None,
        monthly_budget=10.0,
        total_budget=None,
        allow_overlap=False,
        now=T0,
    )
    schedules.add(
        store,
        name="weekly",
        recipe_path=str(tmp_path / "r.yaml"),
        overrides=[],
        backend="local",
        trigger={"every": 604800.0},
        timezone="UTC",
        max_cost_per_run=None,
        monthly_budget=5.0,
        total_budget=None,
        allow_overlap=False,
        now=T0,
    )
    schedules.record(store, a, T0, "launched", 1, 1.0)  # finished: counts what it spent
    schedules.record(store, a, T0, "launched", 2, 2.0)  # live: counts its whole cap
    app = _app(store)
    async with app.run_test(size=(140, 44)):
        assert f"2 schedules: ${store.spend(1) + 2.0:.2f} of $15.00 committed this month" in app.sub_title
