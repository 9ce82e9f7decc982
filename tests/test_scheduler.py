"""Scheduled retraining: the budget rule across runs (pure), the schema migration, triggers, and
the real thing — `spotrain schedule` launching real local jobs under per-run, monthly and total
budgets, and the APScheduler daemon persisting its fire times in the job database across a
restart."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import text

from conftest import ROOT, lab_home, spotrain, tiny_recipe, wait
from spotrain.pricing.offer import Offer
from spotrain.errors import SpotrainError
from spotrain.jobs import schedules
from spotrain.jobs.schedules import PastRun, run_cap

BERLIN = "Europe/Berlin"


def ts(y, mo, d, h=0, mi=0, tz="UTC") -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).timestamp()


# ---------------------------------------------------------------------- the budget rule
def test_month_starts_in_the_schedules_time_zone():
    # 2026-03-01 00:30 in Berlin is still February in UTC
    assert schedules.month_start(ts(2026, 3, 1, 0, 30, BERLIN), BERLIN) == ts(2026, 3, 1, 0, 0, BERLIN)
    assert schedules.month_start(ts(2026, 3, 1, 0, 30, BERLIN), "UTC") == ts(2026, 2, 1)
    with pytest.raises(SpotrainError, match="unknown time zone 'Nowhere/Else'"):
        schedules.month_start(0, "Nowhere/Else")


def test_live_runs_count_their_whole_cap_finished_runs_what_they_spent():
    runs = [
        PastRun(ts(2026, 1, 20), False, 3.0, 5.0),  # last month
        PastRun(ts(2026, 2, 2), False, 1.25, 5.0),  # finished under its cap
        PastRun(ts(2026, 2, 9), True, 0.5, 4.0),
    ]  # running: may spend up to 4
    assert schedules.committed(runs) == pytest.approx(3.0 + 1.25 + 4.0)
    assert schedules.committed(runs, ts(2026, 2, 1)) == pytest.approx(1.25 + 4.0)
    assert (
        schedules.committed([PastRun(0, True, 0.5, None)]) == math.inf
    )  # an uncapped live run commits everything


def test_a_run_gets_the_tightest_of_its_limits_and_none_when_a_budget_is_used_up():
    now = ts(2026, 2, 10)
    runs = [PastRun(ts(2026, 1, 20), False, 30.0, 40.0), PastRun(ts(2026, 2, 2), False, 12.0, 20.0)]
    c = run_cap(per_run=20.0, monthly=50.0, total=None, runs=runs, now=now, tz="UTC")
    assert (c.cap, c.limit) == (20.0, "per-run cap")  # 38 left this month: the per-run cap binds
    c = run_cap(per_run=20.0, monthly=25.0, total=None, runs=runs, now=now, tz="UTC")
    assert c.cap == pytest.approx(13.0) and c.limit.startswith(
        "monthly budget"
    )  # January's 30 does not count
    c = run_cap(per_run=20.0, monthly=50.0, total=50.0, runs=runs, now=now, tz="UTC")
    assert c.cap == pytest.approx(8.0) and c.limit.startswith("total budget")  # 30 + 12 of 50 used
    c = run_cap(per_run=20.0, monthly=50.0, total=None, runs=runs, now=now, tz="UTC", recipe_cap=6.0)
    assert (c.cap, c.limit) == (6.0, "recipe budget.max_cost")
    c = run_cap(per_run=None, monthly=12.0, total=None, runs=runs, now=now, tz="UTC")
    assert c.cap is None and c.reason.startswith(
        "monthly budget ($12, $12 spent or committed this month) has nothing left"
    )
    # next month the monthly budget is fresh again; the total one is not
    assert run_cap(None, 12.0, None, runs, ts(2026, 3, 1), "UTC").cap == pytest.approx(12.0)
    assert run_cap(None, 12.0, 42.0, runs, ts(2026, 3, 1), "UTC").reason.startswith("total budget")
    assert run_cap(None, None, None, runs, now, "UTC") == schedules.Cap(None)


def test_no_sequence_of_runs_can_pass_a_budget():
    """Runs that each spend anything up to their cap, launched whenever: the month and the total
    stay within budget."""
    import random

    rng = random.Random(7)
    for _ in range(200):
        monthly, total, per_run = (
            rng.uniform(5, 50),
            rng.uniform(20, 120),
            rng.choice([None, rng.uniform(1, 30)]),
        )
        runs: list[PastRun] = []
        t = ts(2026, 1, 1)
        for _ in range(30):
            t += rng.uniform(0, 5 * 86400)
            runs = [
                PastRun(
                    r.created,
                    r.live and rng.random() < 0.5,
                    r.spend if not r.live else rng.uniform(0, r.cap),
                    r.cap,
                )
                if r.live
                else r
                for r in runs
            ]
            c = run_cap(per_run, monthly, total, runs, t, "UTC")
            if c.cap is not None:
                runs.append(PastRun(t, True, 0.0, c.cap))
            for r in runs:
                assert r.cap is not None
            worst = [
                PastRun(r.created, False, r.cap if r.live else r.spend, r.cap) for r in runs
            ]  # every live run spends all
            assert schedules.committed(worst) <= total + 1e-9
            for m in range(1, 13):
                month = [r for r in worst if datetime.fromtimestamp(r.created, ZoneInfo("UTC")).month == m]
                assert schedules.committed(month) <= monthly + 1e-9


# ---------------------------------------------------------------------- schema and triggers
def test_a_version_1_database_gains_the_schedule_tables_and_keeps_its_jobs(tmp_path):
    from sqlalchemy import create_engine

    from spotrain.jobs import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    with old.begin() as c:
        db._v1(c)
        c.execute(text("INSERT INTO schema_version (version) VALUES (1)"))
        c.execute(
            text(
                "INSERT INTO jobs (name, status, backend, recipe_yaml, recipe_dir, offers, options, "
                "workdir, created, updated, message) VALUES ('old', 'SUCCEEDED', 'local', '', '.', '[]', "
                "'{}', '.', 1, 1, '')"
            )
        )
    eng = db.connect(url)
    with eng.connect() as c:
        assert c.execute(text("SELECT version FROM schema_version")).scalar() == db.SCHEMA_VERSION == 2
        assert c.execute(text("SELECT name FROM jobs")).scalars().all() == ["old"]
        assert c.execute(text("SELECT count(*) FROM schedules")).scalar() == 0


def test_triggers_are_checked_when_added_and_fire_in_their_time_zone():
    from spotrain.jobs import scheduler

    with pytest.raises(SpotrainError, match="exactly one of --cron"):
        scheduler.parse_trigger(None, None)
    with pytest.raises(SpotrainError, match="--cron '61 \\* \\* \\* \\*'"):
        scheduler.parse_trigger("61 * * * *", None)
    assert scheduler.parse_trigger(None, "6h") == {"every": 21600.0}
    assert scheduler.parse_trigger(None, "1d") == {"every": 86400.0}

    class S:  # the columns next_fires reads
        trigger, timezone, created = {"cron": "0 3 * * 1"}, BERLIN, 0.0

    got = scheduler.next_fires(S, ts(2026, 11, 28, 12), 2)  # a Saturday
    assert got == [ts(2026, 11, 30, 3, 0, BERLIN), ts(2026, 12, 7, 3, 0, BERLIN)]

    # weekdays as cron numbers them (APScheduler 3's own from_crontab would take 1 for Tuesday)
    def days(field):
        S.trigger = {"cron": f"0 12 * * {field}"}
        return [
            datetime.fromtimestamp(t, ZoneInfo(BERLIN)).strftime("%a")
            for t in scheduler.next_fires(S, ts(2026, 11, 29, 13), 7)
        ]

    assert days("1") == days("mon") == ["Mon"] * 7
    assert (
        days("0")[0] == days("7")[0] == days("sun")[0] == "Sun"
    )  # the 29th is a Sunday past noon: next Sunday
    assert days("1-5")[:5] == ["Mon", "Tue", "Wed", "Thu", "Fri"] and days("1-5")[5] == "Mon"
    assert days("5-7")[:3] == ["Fri", "Sat", "Sun"]
    assert days("*/2")[:4] == ["Tue", "Thu", "Sat", "Sun"]  # 0, 2, 4, 6
    assert days("1,3")[:3] == ["Mon", "Wed", "Mon"]
    with pytest.raises(SpotrainError, match="not both"):
        scheduler.parse_trigger("0 3 1 * 1", None)
    with pytest.raises(SpotrainError, match="runs backwards"):
        scheduler.parse_trigger("0 3 * * 5-2", None)

    class E:
        trigger, timezone, created = {"every": 3600.0}, "UTC", ts(2026, 1, 1)

    assert scheduler.next_fires(E, ts(2026, 1, 1, 5, 30), 1) == [ts(2026, 1, 1, 6)]


# ---------------------------------------------------------------------- real runs
@pytest.fixture
def env(tmp_path, monkeypatch):
    return lab_home(tmp_path, monkeypatch, SPOTRAIN_STEP_SLEEP="0.1")


def recipe(tmp_path) -> Path:
    r = {**tiny_recipe(name="nightly"), "resources": {"clouds": ["lab"]}}
    p = tmp_path / "nightly.yaml"
    p.write_text(yaml.safe_dump(r))
    return p


def show(sid: int) -> dict:
    res = spotrain("schedule", "show", str(sid), "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def history(sid: int) -> list:
    """The schedule's fires, read in process (a poll loop of CLI processes would load the CPUs the
    other tests' jobs time themselves on)."""
    from spotrain.jobs.service import open_store

    return schedules.runs(open_store(), sid)


def job_ended(job_id: int) -> bool:
    from spotrain.jobs.service import open_store
    from spotrain.jobs.states import JobStatus

    return JobStatus(open_store().job(job_id).status).is_terminal()


@pytest.mark.slow(40)
@pytest.mark.xdist_group("cpu-timed")  # bursts of job starts: kept off the budget-cap stop test's timing
def test_fired_runs_share_the_monthly_budget_and_never_overlap(env, tmp_path):
    r = spotrain(
        "schedule",
        "add",
        str(recipe(tmp_path)),
        "--every",
        "1d",
        "--max-cost",
        "0.5",
        "--monthly-budget",
        "0.03",
    )
    assert r.returncode == 0, r.stderr
    assert "schedule 1 added (nightly, every 24.0 h)" in r.stdout and "no scheduler is running" in r.stdout
    first = spotrain("schedule", "fire", "1")
    assert first.returncode == 0 and first.stdout.startswith(
        "launched: job 1 on lab/lab-1 box spot, cap $0.03 (monthly budget"
    ), first.stdout
    again = spotrain("schedule", "fire", "1")  # the first run is still going
    assert again.stdout.startswith("skipped: run 1 is still"), again.stdout
    wait(lambda: job_ended(1), what="run 1 to end")
    from spotrain.jobs.service import open_store

    store = open_store()
    assert store.job(1).status == "SUCCEEDED" and store.job(1).max_cost == pytest.approx(0.03)
    spent1 = store.spend(1)
    assert 0 < spent1 < 0.03
    second = spotrain("schedule", "fire", "1")
    h = show(1)["history"]
    assert [x["outcome"] for x in h] == ["launched", "skipped", second.stdout.split(":")[0]]
    left = 0.03 - spent1
    if second.stdout.startswith("launched"):  # a second run fits: its cap is exactly what the month has left
        assert h[-1]["cap"] == pytest.approx(left, rel=1e-9) and store.job(2).max_cost == pytest.approx(
            left, rel=1e-9
        )
        wait(lambda: job_ended(2), what="run 2 to end")
        assert store.spend(1) + store.spend(2) <= 0.03
    else:  # or it is skipped, saying why: the estimate does not fit, or the rest cannot make progress
        assert (
            "exceeds the $" in second.stdout or "cannot make progress" in second.stdout
        ) and "monthly budget" in second.stdout
    listing = json.loads(spotrain("schedule", "list", "--json").stdout)["schedules"][0]
    assert listing["month_committed"] == pytest.approx(sum(store.spend(j.id) for j in store.jobs()))
    assert listing["month_committed"] <= 0.03


def test_a_used_up_budget_launches_nothing_and_says_which(env, tmp_path):
    """Spend recorded through the store's own ledger; the fire is the real one (in process)."""
    from spotrain.jobs import scheduler
    from spotrain.jobs.service import open_store
    from spotrain.jobs.states import EndReason, JobStatus

    store = open_store()
    now = time.time()
    sid = schedules.add(
        store,
        name="n",
        recipe_path=str(recipe(tmp_path)),
        overrides=[],
        backend="local",
        trigger={"every": 3600.0},
        timezone="UTC",
        max_cost_per_run=None,
        monthly_budget=None,
        total_budget=1.0,
        allow_overlap=False,
        now=now,
    )
    job = store.create_job(
        name="n",
        backend="local",
        recipe_yaml="",
        recipe_dir=".",
        offers=[],
        options={},
        workdir=".",
        max_cost=1.0,
        deadline=None,
        now=now - 7200,
    )
    offer = Offer("lab", "lab-1", "", "box", "", 0, 8, 0, spot=False, hourly=3.6, on_demand_hourly=3.6)
    a = store.start_attempt(job, offer, "local", emulated=True, now=now - 7200)
    store.bill(a, now - 7200 + 1000)  # $1.00: all of it
    store.end_attempt(a, EndReason.SUCCEEDED, 0, now - 7200 + 1000)
    for s in (JobStatus.PROVISIONING, JobStatus.RUNNING, JobStatus.SUCCEEDED):
        store.transition(job, s, now - 7000)
    schedules.record(store, sid, now - 7200, "launched", job, 1.0)
    out = scheduler.fire(sid, now)
    assert (
        out["outcome"] == "skipped"
        and out["message"] == "total budget ($1, $1 spent or committed) has nothing left"
    )
    assert [j.id for j in store.jobs()] == [job]  # nothing launched
    schedules.set_enabled(store, sid, False)
    assert scheduler.fire(sid, now)["message"] == "schedule is paused"
    assert scheduler.fire(999, now)["outcome"] == "missing"


def test_a_reservation_holds_its_cap_until_settled(env, tmp_path):
    """The cap is reserved in the job database before the job exists: a second fire meanwhile
    sees it; a failed launch frees it."""
    from spotrain.jobs.service import open_store

    store = open_store()
    sid = schedules.add(
        store,
        name="n",
        recipe_path=str(recipe(tmp_path)),
        overrides=[],
        backend="local",
        trigger={"every": 3600.0},
        timezone="UTC",
        max_cost_per_run=0.6,
        monthly_budget=1.0,
        total_budget=None,
        allow_overlap=True,
        now=time.time(),
    )
    now = time.time()
    first, rid = schedules.reserve(store, sid, now, None, estimate=0.01)
    assert first == {"outcome": "launching", "cap": 0.6, "limit": "per-run cap"} and rid is not None
    second, rid2 = schedules.reserve(store, sid, now, None, estimate=0.01)
    assert second["cap"] == pytest.approx(0.4) and rid2 is not None  # 1.0 − the 0.6 reserved
    third, none = schedules.reserve(store, sid, now, None, estimate=0.01)
    assert none is None and third["message"].startswith(
        "monthly budget ($1, $1 spent or committed this month) has nothing"
    )
    schedules.settle(store, rid, "failed", None, "could not create the job")
    again, rid3 = schedules.reserve(store, sid, now, None, estimate=0.01)
    assert again["cap"] == pytest.approx(0.6) and rid3 is not None  # the failed launch's cap is free again
    late, _ = schedules.reserve(store, sid, now, None, estimate=0.5)  # 0.0 left after 0.4 + 0.6
    assert late["outcome"] == "skipped"
    with store.session() as s:
        s.execute(text("UPDATE schedules SET allow_overlap = 0"))
        s.commit()
    busy, _ = schedules.reserve(store, sid, now, None, estimate=0.01)
    assert busy["message"] == "another fire is launching a run (overlap not allowed)"
    # a fire that died mid-launch: its reservation stops blocking after LAUNCH_STALE, its cap still counts
    schedules.settle(store, rid2, "failed", None, "x")  # leaves one reservation hanging: rid3, 0.6 at `now`
    later = now + schedules.LAUNCH_STALE + 1
    assert schedules.reserve(store, sid, now + 1, None, 0.01)[0]["message"] == busy["message"]
    after, rid4 = schedules.reserve(store, sid, later, None, estimate=0.01)
    assert after["cap"] == pytest.approx(0.4) and rid4 is not None  # 1.0 − the hanging 0.6


@pytest.mark.slow(30)
@pytest.mark.xdist_group("cpu-timed")
def test_two_fires_at_once_cannot_both_spend_the_same_remainder(env, tmp_path):
    r = spotrain(
        "schedule",
        "add",
        str(recipe(tmp_path)),
        "--every",
        "1d",
        "--max-cost",
        "0.03",
        "--monthly-budget",
        "0.03",
        "--allow-overlap",
    )
    assert r.returncode == 0, r.stderr
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spotrain", "schedule", "fire", "1"],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outs = sorted(p.communicate(timeout=120)[0] for p in procs)
    assert [o.split(":")[0] for o in outs] == ["launched", "skipped"], outs
    assert "monthly budget ($0.03, $0.03 spent or committed this month) has nothing left" in outs[1]
    job = [h.job_id for h in history(1) if h.outcome == "launched"]
    assert len(job) == 1
    wait(lambda: job_ended(job[0]), what="the run to end")


def test_bad_schedules_are_refused_in_one_line(env, tmp_path):
    rp = str(recipe(tmp_path))
    for args, msg in [
        (["--every", "1h"], "a schedule spends money unattended"),
        (["--cron", "0 3 * *", "--max-cost", "1"], "--cron '0 3 * *': Wrong number of fields"),
        (["--every", "1h", "--max-cost", "-2"], "--max-cost must be a positive amount"),
        (
            ["--every", "1h", "--max-cost", "1", "--timezone", "Mars/Olympus"],
            "unknown time zone 'Mars/Olympus'",
        ),
    ]:
        r = spotrain("schedule", "add", rp, *args)
        assert r.returncode == 2 and r.stderr.startswith(f"error: {msg}"), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = spotrain("schedule", "add", str(tmp_path / "missing.yaml"), "--every", "1h", "--max-cost", "1")
    assert r.returncode == 2 and "missing.yaml" in r.stderr
    assert (
        spotrain("schedule", "show", "7").stderr.strip()
        == "error: no schedule 7 — see `spotrain schedule list`"
    )
    assert json.loads(spotrain("schedule", "list", "--json").stdout)["schedules"] == []


@pytest.mark.slow(45)
@pytest.mark.xdist_group("cpu-timed")
def test_daemon_fires_on_its_trigger_and_keeps_its_schedule_across_a_restart(env, tmp_path):
    r = spotrain(
        "schedule",
        "add",
        str(recipe(tmp_path)),
        "--every",
        "3s",
        "--max-cost",
        "0.05",
        "--total-budget",
        "0.5",
    )
    assert r.returncode == 0, r.stderr

    def start():
        return subprocess.Popen(
            [sys.executable, "-m", "spotrain", "scheduler", "--poll", "1"],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    d = start()
    try:
        wait(lambda: any(h.outcome == "launched" for h in history(1)), 60, "a launched run")
        # a job whose controller is gone (never started here): the daemon adopts it with no CLI command,
        # and the new controller ends it at its (past) deadline
        from spotrain.jobs.service import open_store

        st = open_store()
        orphan = st.create_job(
            name="orphan",
            backend="local",
            recipe_yaml=yaml.safe_dump(tiny_recipe()),
            recipe_dir=str(tmp_path),
            offers=[],
            options={},
            workdir=str(tmp_path / "orphan"),
            max_cost=None,
            deadline=time.time() - 1,
            now=time.time() - 100,
        )
        (tmp_path / "orphan").mkdir()
        wait(
            lambda: open_store().job(orphan).status == "STOPPED_DEADLINE",
            60,
            "the daemon to adopt the orphan job",
        )
        assert any(e.kind == "restart" for e in open_store().events(orphan))
        second = spotrain("scheduler", "--poll", "1")
        assert second.returncode == 2 and "a scheduler already runs for this job database" in second.stderr
        listing = json.loads(spotrain("schedule", "list", "--json").stdout)
        assert listing["scheduler"]["pid"] == d.pid
    finally:
        d.send_signal(signal.SIGTERM)
        out, _ = d.communicate(timeout=30)
    assert d.returncode == 0, out
    assert "schedule 1 (nightly) added: interval[0:00:03]" in out
    from spotrain.jobs.db import connect

    with (
        connect().connect() as c
    ):  # APScheduler's own table in the job database keeps the job and its next time
        rows = c.execute(text("SELECT id, next_run_time, job_state FROM apscheduler_jobs")).all()
    assert [row[0] for row in rows] == ["schedule-1"] and rows[0][1] > time.time() - 60
    import pickle

    assert pickle.loads(rows[0][2])["func"] == "spotrain.jobs.scheduler:fire"
    fired = len(history(1))
    d = start()  # picks the stored job up again (no duplicate, no error) and goes on firing
    try:
        wait(lambda: len(history(1)) > fired, 30, "a fire after the restart")
    finally:
        d.send_signal(signal.SIGTERM)
        out, _ = d.communicate(timeout=30)
    assert d.returncode == 0 and "Traceback" not in out and "ConflictingIdError" not in out, out
    hist = show(1)["history"]
    launched = [h for h in hist if h["outcome"] == "launched"]
    assert all(h["outcome"] in ("launched", "skipped") for h in hist)
    assert all(
        "still" in h["message"] for h in hist if h["outcome"] == "skipped"
    )  # only overlaps were skipped
    for h in launched:
        wait(lambda: job_ended(h["job"]), what=f"job {h['job']} to end")
    from spotrain.jobs.service import open_store

    store = open_store()
    assert all(store.job(h["job"]).max_cost == pytest.approx(0.05) for h in launched)
    assert sum(store.spend(h["job"]) for h in launched) <= 0.5


def test_a_cap_too_small_to_make_progress_is_skipped_with_the_cap_that_would_work(env, tmp_path):
    """The issue's case: the estimate fits the cap, but start-up + a checkpoint interval + the stop
    do not. The fire launches nothing, records the skip and the least cap that would work."""
    from spotrain.jobs import scheduler
    from spotrain.jobs.service import open_store

    store = open_store()
    sid = schedules.add(
        store,
        name="n",
        recipe_path=str(recipe(tmp_path)),
        overrides=[],
        backend="local",
        trigger={"every": 3600.0},
        timezone="UTC",
        max_cost_per_run=0.004,
        monthly_budget=0.005,
        total_budget=None,
        allow_overlap=False,
        now=time.time(),
    )
    out = scheduler.fire(sid)
    assert out["outcome"] == "skipped", out
    assert "cannot make progress" in out["message"] and "a cap of at least $" in out["message"]
    need = float(out["message"].split("a cap of at least $", 1)[1].split()[0])
    assert need > 0.004
    assert store.jobs() == [] and schedules.runs(store, sid)[-1].outcome == "skipped"
