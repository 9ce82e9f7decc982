"""Money and time limits that hold when spotrain's own processes die (issue 18, item 1): each
attempt knows the moment it must have stopped by and stops itself there; its runner restarts a
dead controller, which bills the attempt up to its end — never up to when it came back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spotrain.jobs.states import Request
from spotrain.pricing.offer import Offer
from conftest import ROOT, lab_home, spotrain, tiny_recipe, wait

SLOW = dict(
    train__batch_size=8,
    train__steps=5000,
    train__checkpoints={"every_steps": 200, "every_minutes": None, "keep_last": 2},
)
PRICE = 3.6  # the lab box on demand, $/h
TICK = PRICE * 1.0 / 3600  # one controller tick's bill


@pytest.fixture
def env(tmp_path, monkeypatch):
    # a controller is only restarted 60 s after its last beat: the attempt must hold the limit alone
    return lab_home(tmp_path, monkeypatch, SPOTRAIN_STEP_SLEEP="0.045", SPOTRAIN_HEARTBEAT_STALE="60")


def store():
    from spotrain.jobs.service import open_store

    return open_store()  # no ensure_controllers: reading the database is not a spotrain command


def write(tmp_path: Path, recipe: dict) -> Path:
    r = {**recipe, "resources": {"clouds": ["lab"], "spot": False}}
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(r))
    return p


def attempt_events(att) -> list[dict]:
    return [json.loads(line) for line in (Path(att.handle["dir"]) / "events.jsonl").read_text().splitlines()]


def launch_and_train(recipe: Path) -> int:
    res = spotrain("launch", str(recipe), "--yes", "--detach", "--no-live")
    assert res.returncode == 0, res.stdout + res.stderr
    job_id = int(res.stdout.split("job ", 1)[1].split()[0])

    def stepping():
        a = store().current_attempt(job_id)
        if a is None or "dir" not in (a.handle or {}):
            return False
        f = Path(a.handle["dir"]) / "events.jsonl"
        return f.exists() and sum(1 for line in f.read_text().splitlines() if '"step"' in line) >= 3

    wait(stepping, what="training")
    return job_id


def move_limit_then_kill_controller(job_id: int, **values) -> tuple[float, str]:
    """Set the job's cap or deadline in the database, wait until the controller has moved the
    attempt's stop-by moment there, then SIGKILL the controller. Returns (moment, reason)."""
    from sqlalchemy import update

    from spotrain.jobs.db import Job

    s = store()
    limits_file = Path(s.current_attempt(job_id).handle["dir"]) / "limits.json"
    before = json.loads(limits_file.read_text())
    with s.session() as ses, ses.begin():
        ses.execute(update(Job).where(Job.id == job_id).values(**values))
    reason = "budget" if "max_cost" in values else "deadline"

    def moved():
        now = json.loads(limits_file.read_text())
        return now["reason"] == reason and now["stop_by"] != before["stop_by"]

    wait(moved, timeout=30, what="the moved stop-by moment")
    moment = json.loads(limits_file.read_text())["stop_by"]
    pid = s.job(job_id).controller_pid
    os.kill(pid, signal.SIGKILL)
    return moment, reason


@pytest.mark.slow(60)
def test_budget_cap_holds_while_the_controller_is_dead(env, tmp_path):
    job_id = launch_and_train(write(tmp_path, tiny_recipe(**SLOW, budget={"max_cost": 1.0})))
    s = store()
    cap = round(s.spend(job_id) + PRICE * 30 / 3600, 6)  # ~30 s more at $3.60/h
    killed_at = time.time()
    moment, _ = move_limit_then_kill_controller(job_id, max_cost=cap)
    # no spotrain command from here on: the attempt stops itself, its runner brings a controller back
    wait(
        lambda: store().job(job_id).status in ("STOPPED_BUDGET", "FAILED", "SUCCEEDED"),
        timeout=150,
        what="the job to end",
    )
    s = store()
    job, att = s.job(job_id), s.attempts(job_id)[0]
    assert job.status == "STOPPED_BUDGET", job.message
    assert (att.end_reason, att.exit_code) == ("budget", 4), (
        "the attempt stopped itself (exit 4), nobody killed it"
    )
    assert s.spend(job_id) <= cap + TICK
    evs = attempt_events(att)
    stop = [e for e in evs if e["event"] == "stopped_at_limit"]
    assert stop and stop[0]["reason"] == "budget" and stop[0]["saved"] and stop[0]["time"] <= moment
    assert [e for e in evs if e["event"] == "checkpoint_saved"][-1]["reason"] == "limit"
    exit_rec = json.loads((Path(att.handle["dir"]) / "exit.json").read_text())
    assert exit_rec["time"] <= moment + 1.0  # ended by its stop-by moment (the kill window is 2 ticks)
    ledger = s.ledger(job_id)
    assert ledger[-1].end == pytest.approx(
        exit_rec["time"]
    )  # billed up to the attempt's end, not to the adoption
    assert all(
        a.end == pytest.approx(b.start) for a, b in zip(ledger, ledger[1:])
    )  # contiguous: nothing dropped
    adopt = [e for e in s.events(job_id) if e.kind == "adopt"]
    assert adopt and adopt[0].time > killed_at


@pytest.mark.slow(60)
def test_deadline_holds_while_the_controller_is_dead(env, tmp_path):
    job_id = launch_and_train(write(tmp_path, tiny_recipe(**SLOW)))
    deadline = time.time() + 30
    moment, _ = move_limit_then_kill_controller(job_id, deadline=deadline)
    wait(
        lambda: store().job(job_id).status in ("STOPPED_DEADLINE", "FAILED", "SUCCEEDED"),
        timeout=150,
        what="the job to end",
    )
    s = store()
    job, att = s.job(job_id), s.attempts(job_id)[0]
    assert job.status == "STOPPED_DEADLINE", job.message
    assert (att.end_reason, att.exit_code) == ("deadline", 4)
    exit_rec = json.loads((Path(att.handle["dir"]) / "exit.json").read_text())
    assert exit_rec["time"] <= deadline
    stop = [e for e in attempt_events(att) if e["event"] == "stopped_at_limit"]
    assert stop and stop[0]["reason"] == "deadline"
    assert s.ledger(job_id)[-1].end == pytest.approx(exit_rec["time"])


def test_status_says_at_least_while_no_controller_bills(env, tmp_path):
    """A job whose controller stopped beating: `status` marks its spend as a lower bound (and
    adopts it). The attempt here is a real process the new controller watches, then cancels."""
    from spotrain.jobs.states import JobStatus
    from spotrain.launcher.backends.local import _proc_start_time

    s = store()
    recipe = tiny_recipe()
    job_id = s.create_job(
        name="t",
        backend="local",
        recipe_yaml=yaml.safe_dump(recipe),
        recipe_dir=str(tmp_path),
        offers=[],
        options={},
        workdir=str(tmp_path / "job"),
        max_cost=5.0,
        deadline=None,
        now=time.time() - 100,
    )
    (tmp_path / "job").mkdir()
    s.transition(job_id, JobStatus.PROVISIONING, time.time() - 99)
    sleeper = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        offer = Offer(
            "lab", "lab-1", "", "box", "", 0, 8, 0, spot=False, hourly=PRICE, on_demand_hourly=PRICE
        )
        a = s.start_attempt(job_id, offer, "local", True, time.time() - 99)
        s.set_handle(
            a,
            {
                "pid": sleeper.pid,
                "pgid": sleeper.pid,
                "start_time": _proc_start_time(sleeper.pid),
                "dir": str(tmp_path / "job"),
                "exit_file": str(tmp_path / "job" / "exit.json"),
                "log": str(tmp_path / "job" / "attempt.log"),
            },
        )
        s.transition(job_id, JobStatus.RUNNING, time.time() - 99)
        s.claim_controller(job_id, 999999, time.time() - 90, 15)  # a controller that died 90 s ago
        res = spotrain("status", str(job_id), "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["spend_at_least"] is True
        wait(lambda: [e for e in store().events(job_id) if e.kind == "adopt"], timeout=60, what="adoption")
        wait(lambda: store().spend(job_id) > PRICE * 90 / 3600, timeout=60, what="the gap billed")
        store().request(job_id, Request.CANCEL, time.time())
        wait(lambda: store().job(job_id).status == "CANCELLED", timeout=60, what="the cancel")
        assert json.loads(spotrain("status", str(job_id), "--json").stdout)["spend_at_least"] is False
    finally:
        sleeper.kill()


def test_run_stops_itself_before_its_stop_by_moment(tmp_path):
    """The node side alone (no controller, no job): `spotrain run` told a moment 12 s ahead checkpoints
    and exits 4 before it; a moment moved in the limits file is picked up; the watchdog ends a run
    still going at its moment with exit 5."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**SLOW)))
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"stop_by": None, "reason": None}))
    env = {"SPOTRAIN_STEP_SLEEP": "0.045", "SPOTRAIN_LIMITS_FILE": str(limits)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotrain", "run", str(recipe), "--workdir", str(tmp_path / "w")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    events = tmp_path / "w" / "events.jsonl"
    wait(lambda: events.exists() and '"step"' in events.read_text(), what="training")
    moment = time.time() + 12
    limits.write_text(json.dumps({"stop_by": moment, "reason": "deadline"}))
    out, _ = proc.communicate(timeout=120)
    ended = time.time()
    assert proc.returncode == 4, out[-2000:]
    assert ended <= moment + 1.0
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    assert (
        evs[-1]["event"] == "run_end" and evs[-1]["status"] == "stopped" and evs[-1]["reason"] == "deadline"
    )
    saved = [e for e in evs if e["event"] == "checkpoint_saved"][-1]
    assert saved["reason"] == "limit" and saved["step"] == evs[-1]["step"]
    assert "stopping before the deadline stop-by moment" in out

    # a moment already past at start: nothing to train, nothing new to save, exit 4 at once
    res = spotrain(
        "run",
        str(recipe),
        "--workdir",
        str(tmp_path / "w"),
        env={"SPOTRAIN_STOP_BY": repr(time.time() - 1)},
        timeout=120,
    )
    assert res.returncode in (4, 5), res.stdout + res.stderr


def test_watchdog_ends_a_process_at_its_moment(tmp_path):
    code = (
        "import time, os; os.environ['SPOTRAIN_STOP_BY'] = repr(time.time() + 1.0)\n"
        "from spotrain.recipes.runtime.train.stop_by import StopBy\n"
        "StopBy().start_watchdog(); time.sleep(60)\n"
    )
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 5 and "ending now so the limit holds" in res.stderr
    assert time.monotonic() - t0 < 30  # ended by the watchdog, not by the 60 s sleep


def test_stop_by_arithmetic():
    from spotrain.jobs import limits

    # $3.60/h, $1 left of a $2 cap at t=1000: the cap is reached 1000 s later; the attempt must be gone
    # 2 ticks before
    s = limits.stop_by(2.0, None, 1.0, 1000.0, 3.6, tick=1.0)
    assert (s.at, s.reason) == (pytest.approx(1998.0), "budget")
    # billing does not move the moment: spend and billed_until advance together
    assert limits.stop_by(2.0, None, 1.0 + 3.6 * 100 / 3600, 1100.0, 3.6, 1.0).at == pytest.approx(1998.0)
    assert limits.stop_by(2.0, 1500.0, 1.0, 1000.0, 3.6, 1.0) == limits.StopBy(1498.0, "deadline")
    assert limits.stop_by(None, None, 0.0, 0.0, 3.6, 1.0) is None
    # the least cap that gets past one checkpoint: start-up + interval + reserve, at the price
    assert limits.min_cap(3.6, 20, 30, 10) == pytest.approx(0.06)


def test_stop_by_reads_env_and_file(tmp_path):
    from spotrain.errors import SpotrainError
    from spotrain.recipes.runtime.train.stop_by import StopBy

    now = [1000.0]
    f = tmp_path / "limits.json"
    sb = StopBy({"SPOTRAIN_STOP_BY": "1100", "SPOTRAIN_LIMITS_FILE": str(f)}, clock=lambda: now[0])
    assert sb.at == 1100.0 and not sb.due(step_s=1.0, save_s=2.0)
    now[0] = 1094.5  # 1094.5 + 1 + 2 + 3 (exit) >= 1100
    assert sb.due(step_s=1.0, save_s=2.0)
    f.write_text(json.dumps({"stop_by": 2000.0, "reason": "budget"}))  # the controller moved it
    assert not sb.due(1.0, 2.0) and (sb.at, sb.reason) == (2000.0, "budget")
    f.write_text(json.dumps({"stop_by": None, "reason": None}))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not sb.due(1.0, 1e9)
    with pytest.raises(SpotrainError, match="SPOTRAIN_STOP_BY='soon' is not a Unix time"):
        StopBy({"SPOTRAIN_STOP_BY": "soon"})
