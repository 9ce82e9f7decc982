"""Jobs on the local backend, end to end through the CLI: chaos preemptions with exact resume,
controller adoption, concurrent launches, the budget cap, failures."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, lab_home, spotrain, tiny_recipe, wait


@pytest.fixture
def env(tmp_path, monkeypatch):
    return lab_home(tmp_path, monkeypatch, SPOTRAIN_STEP_SLEEP="0.045", PYTHONPATH=str(Path(__file__).parent))


def write(tmp_path: Path, recipe: dict, name="r.yaml") -> Path:
    r = {**recipe, "resources": {"clouds": ["lab"], **recipe.get("resources", {})}}
    p = tmp_path / name
    p.write_text(yaml.safe_dump(r))
    return p


def store():
    from spotrain.jobs.service import open_store

    return open_store()


def job_status(job_id: int) -> str:
    return store().job(job_id).status


def current_step(job_id: int) -> int:
    from spotrain.jobs.controller import read_progress

    a = store().current_attempt(job_id)
    if a is None or "dir" not in (a.handle or {}):
        return -1
    return read_progress(Path(a.handle["dir"])).get("step", -1)


def launch(recipe: Path, *extra: str, env=None) -> int:
    res = spotrain("launch", str(recipe), "--yes", "--detach", "--no-live", *extra, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return int(res.stdout.split("job ", 1)[1].split()[0])


def losses(events_files: list[Path]) -> dict[int, float]:
    out = {}
    for f in events_files:
        for line in f.read_text().splitlines():
            ev = json.loads(line)
            if ev["event"] == "step":
                out[ev["step"]] = ev["loss"]
    return out


# The tiny model, each step padded to ~50 ms by SPOTRAIN_STEP_SLEEP (the env fixture): preemptions
# land mid-training, and the steps cost little CPU, so these tests keep their timing on a busy machine
SLOW = dict(train__batch_size=8)
CHAOS = dict(
    model={"family": "gpt2", "layers": 2, "heads": 2, "hidden": 32, "context": 32, "dropout": 0.1},
    train__batch_size=8,
    train__steps=120,
    train__log_every=1,
    train__checkpoints={"every_steps": 10, "every_minutes": None, "keep_last": 3},
)


@pytest.mark.slow(75)
def test_chaos_three_preemptions_end_bit_identical_with_a_complete_ledger(env, tmp_path):
    recipe = write(tmp_path, tiny_recipe(**CHAOS))
    ref = spotrain("run", str(recipe), "--workdir", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    rng = random.Random(1)
    # attempt 2 is SIGKILLed in the middle of its first checkpoint write (after the rename, before the
    # manifest)
    job = launch(recipe, "--grace", "60s", "--attempt-env", "2:SPOTRAIN_FAILPOINT=renamed@*")
    # 1) a graceful preemption (SIGTERM → checkpoint → exit) at a random step of attempt 1
    target = rng.randint(6, 14)
    wait(lambda: current_step(job) >= target, what=f"step {target}")
    assert spotrain("preempt", str(job)).returncode == 0
    wait(lambda: len(store().attempts(job)) >= 3, what="attempt 3 (attempt 2 died mid-checkpoint)")
    # 3) node loss at a random moment of attempt 3: SIGKILL of its whole process group
    restored = wait(lambda: current_step(job), what="attempt 3 training")
    wait(lambda: current_step(job) >= restored + rng.randint(2, 6), what="attempt 3 progress")
    a3 = store().current_attempt(job)
    assert a3.number == 3
    os.killpg(a3.handle["pgid"], signal.SIGKILL)
    wait(
        lambda: job_status(job) in ("SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_NO_RESOURCE"),
        timeout=300,
        what="job end",
    )
    s = store()
    assert s.job(job).status == "SUCCEEDED", s.job(job).message
    atts = s.attempts(job)
    assert [a.end_reason for a in atts] == ["preempted", "lost", "lost", "succeeded"]
    # bit-identical final weights and the same loss trajectory as the uninterrupted run
    ck = lambda d: torch.load(d / "checkpoints" / "step-00000120" / "model.pt", weights_only=False)  # noqa: E731
    mine, theirs = ck(Path(s.job(job).workdir)), ck(tmp_path / "ref")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    files = [Path(a.handle["dir"]) / "events.jsonl" for a in atts]
    assert losses(files) == losses([tmp_path / "ref" / "events.jsonl"])
    # money: ledger = Σ attempts, every billed second accounted once
    ledger = s.ledger(job)
    assert s.spend(job) == pytest.approx(math.fsum(a.cost for a in atts), abs=1e-12)
    for a in atts:
        spans = [(e.start, e.end) for e in ledger if e.attempt_id == a.id]
        assert spans[0][0] == a.start and spans[-1][1] == a.billed_until
        assert all(x[1] == y[0] for x, y in zip(spans, spans[1:])), "contiguous, no gap or overlap"
        assert a.cost == pytest.approx(a.price * (a.billed_until - a.start) / 3600)
    rep = json.loads(spotrain("cost", str(job), "--json").stdout)
    assert rep["total"] == pytest.approx(s.spend(job)) and len(rep["attempts"]) == 4 and rep["emulated"]


def test_killed_controller_is_adopted_and_the_job_runs_once(env, tmp_path):
    recipe = write(tmp_path, tiny_recipe(**SLOW, train__steps=400, train__log_every=1))
    job = launch(recipe)
    wait(lambda: current_step(job) >= 3, what="training")
    first = store().job(job).controller_pid
    os.kill(first, signal.SIGKILL)
    time.sleep(3.5)  # the heartbeat goes stale (SPOTRAIN_HEARTBEAT_STALE=3)
    assert spotrain("status", str(job)).returncode == 0  # any command adopts
    # the adopter takes over (it may finish the job before the test looks: then no pid is left)
    wait(
        lambda: "adopt" in [e.kind for e in store().events(job)] and store().job(job).controller_pid != first,
        what="a new controller",
    )
    wait(lambda: job_status(job) == "SUCCEEDED", timeout=300, what="job end")
    s = store()
    atts = s.attempts(job)
    assert len(atts) == 1, "adopted, not relaunched"
    evs = (Path(atts[0].handle["dir"]) / "events.jsonl").read_text()
    assert evs.count('"event":"run_start"') == 1
    assert [e.kind for e in s.events(job)].count("adopt") == 1


def test_ten_concurrent_launches_keep_every_row(env, tmp_path, monkeypatch):
    # twenty processes start at once: on a loaded machine a live controller's heartbeat may lag
    # the test's 3 s, and an adoption adds an event; adoption has its own test
    monkeypatch.setenv("SPOTRAIN_HEARTBEAT_STALE", "60")
    recipe = write(tmp_path, tiny_recipe(data__sources=[{"type": "files", "paths": ["missing/*.txt"]}]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spotrain", "launch", str(recipe), "--yes", "--detach", "--no-live"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(10)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o for p, o in zip(procs, outs) if p.returncode != 0]
    ids = sorted(int(o.split("job ", 1)[1].split()[0]) for o, _ in outs)
    assert ids == list(range(1, 11))
    wait(lambda: all(job_status(i) == "FAILED_SETUP" for i in ids), timeout=300, what="all jobs to end")
    s = store()
    for i in ids:
        kinds = [e.kind for e in s.events(i)]
        assert kinds == ["created", "status", "attempt", "status", "attempt_end", "status"], (i, kinds)
        assert len(s.attempts(i)) == 1
        assert s.spend(i) == pytest.approx(s.attempts(i)[0].cost)
    with s.engine.connect() as c:
        from sqlalchemy import text

        assert c.execute(text("PRAGMA integrity_check")).scalar() == "ok"


@pytest.mark.xdist_group(
    "cpu-timed"
)  # not beside test_scheduler's job bursts: their load outruns the stop estimate
def test_budget_cap_stops_gracefully_with_a_usable_checkpoint(env, tmp_path):
    """The cap is reached mid-training: the graceful stop starts before it (save estimate + ticks),
    the checkpoint is usable, spend stays within the cap. The cap is lowered to what is spent plus
    ~15 s once training runs, so a slow start-up on a busy machine cannot use it up first."""
    from sqlalchemy import update

    from spotrain.jobs.db import Job
    from spotrain.recipes.runtime.train import checkpoint

    recipe = write(
        tmp_path, tiny_recipe(**SLOW, train__steps=5000, budget={"max_cost": 1.0}, resources={"spot": False})
    )
    out = tmp_path / "launch.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spotrain", "launch", str(recipe), "--yes", "--no-live", "--force"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
        )
        try:
            job_id = wait(lambda: store().jobs() and store().jobs()[-1].id, what="the job")
            wait(lambda: current_step(job_id) >= 3, what="training")
            s = store()
            cap = round(s.spend(job_id) + 3.6 * 15 / 3600, 6)  # $3.60/h on-demand: ~15 s more
            with s.session() as ses, ses.begin():
                ses.execute(update(Job).where(Job.id == job_id).values(max_cost=cap))
            assert proc.wait(timeout=120) == 1, out.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out.read_text()
    assert "STOPPED_BUDGET" in text and "(emulated)" in text
    job = s.job(job_id)
    assert job.status == "STOPPED_BUDGET"
    tick = 3.6 * 1.0 / 3600  # one billing tick at $3.60/h
    assert s.spend(job.id) <= cap + tick
    found = checkpoint.latest(Path(job.workdir) / "checkpoints")
    assert found is not None and found.step > 0 and found.manifest["files"]["model.pt"]["bytes"] > 0
    att = s.attempts(job.id)[0]
    # stopped gracefully, not killed: by the controller's SIGTERM (143) or — whichever comes first when
    # the cap is moved this close — by the attempt itself before its stop-by moment (4)
    assert att.end_reason == "budget" and att.exit_code in (143, 4), att.exit_code
    evs = [json.loads(l) for l in (Path(att.handle["dir"]) / "events.jsonl").read_text().splitlines()]
    saved = [e for e in evs if e["event"] == "checkpoint_saved"][-1]
    assert (
        saved["reason"] == {143: "signal", 4: "limit"}[att.exit_code]
        and saved["step"] == found.step == att.last_step
    )


def test_launch_refuses_a_plan_above_the_budget(env, tmp_path):
    recipe = write(tmp_path, tiny_recipe(train__steps=10**7, budget={"max_cost": 0.01}))
    res = spotrain("launch", str(recipe), "--yes", "--no-live")
    assert res.returncode == 2 and "exceeds budget.max_cost $0.0100" in res.stderr and "--force" in res.stderr
    assert store().jobs() == []


def test_setup_failure_crash_and_bad_job_ids(env, tmp_path):
    setup = write(
        tmp_path, tiny_recipe(data__sources=[{"type": "files", "paths": ["nope.txt"]}]), "setup.yaml"
    )
    res = spotrain("launch", str(setup), "--yes", "--no-live")
    assert res.returncode == 1 and "FAILED_SETUP: error: data.sources[0]: file '" in res.stdout
    assert f"{tmp_path / 'nope.txt'}' not found" in res.stdout
    crash = write(tmp_path, tiny_recipe(data__augment=[{"fn": "aug_helpers:boom"}]), "crash.yaml")
    res = spotrain("launch", str(crash), "--yes", "--no-live")
    assert (
        res.returncode == 1
        and "FAILED: internal error: RuntimeError: user augmentation crashed" in res.stdout
    )
    s = store()
    jobs = s.jobs()
    assert [j.status for j in jobs] == ["FAILED_SETUP", "FAILED"]
    assert len(s.attempts(jobs[1].id)) == 1, "a crash is not retried as a preemption"
    for cmd in (
        ["status", "99"],
        ["logs", "99"],
        ["cancel", "99"],
        ["preempt", "99"],
        ["events", "99"],
        ["cost", "99"],
    ):
        r = spotrain(*cmd)
        assert (
            r.returncode == 2 and r.stderr.strip() == "error: no job 99 — see `spotrain status` for job ids"
        ), cmd
    r = spotrain("cancel", str(jobs[0].id))
    assert r.returncode == 2 and "already ended (FAILED_SETUP)" in r.stderr
    logs = spotrain("logs", str(jobs[0].id))
    assert "=== attempt 1:" in logs.stdout and "not found" in logs.stdout


def test_deadline_stops_the_job_with_a_checkpoint(env, tmp_path):
    """The deadline arrives mid-training: the controller stops the attempt gracefully in time, the
    last checkpoint is the last step, the job ends STOPPED_DEADLINE and launch exits 1. The
    deadline is moved in once training runs, so a slow start-up cannot make the stop land before
    the first step (then there is nothing to checkpoint, which is also correct)."""
    from sqlalchemy import update

    from spotrain.jobs.db import Job
    from spotrain.recipes.runtime.train import checkpoint

    recipe = write(tmp_path, tiny_recipe(**SLOW, train__steps=5000, budget={"deadline": "15m"}))
    out = tmp_path / "launch.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spotrain", "launch", str(recipe), "--yes", "--no-live", "--force"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
        )
        try:
            job_id = wait(lambda: store().jobs() and store().jobs()[-1].id, what="the job")
            wait(lambda: current_step(job_id) >= 3, what="training")
            s = store()
            with s.session() as ses, ses.begin():
                ses.execute(update(Job).where(Job.id == job_id).values(deadline=time.time() + 12))
            assert proc.wait(timeout=120) == 1, out.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "STOPPED_DEADLINE" in out.read_text()
    job = s.job(job_id)
    assert job.status == "STOPPED_DEADLINE" and job.ended <= job.deadline + 3
    att = s.attempts(job.id)[-1]
    assert att.end_reason == "deadline" and att.exit_code in (143, 4), (
        att.exit_code
    )  # the controller's SIGTERM or its own stop
    assert att.last_step >= 3 and checkpoint.latest(Path(job.workdir) / "checkpoints").step == att.last_step


@pytest.mark.slow(80)
def test_random_hazard_and_trace_replay_preempt_and_recover(env, tmp_path):
    recipe = write(
        tmp_path,
        tiny_recipe(
            **SLOW,
            train__steps=150,
            train__checkpoints={"every_steps": 10, "every_minutes": None, "keep_last": 2},
        ),
    )
    res = spotrain(
        "launch", str(recipe), "--yes", "--no-live", "--preempt-every", "6s", "--seed", "3", "--grace", "30s"
    )
    assert res.returncode == 0, res.stdout[-2000:]
    s = store()
    job = s.jobs()[-1]
    reasons = [a.end_reason for a in s.attempts(job.id)]
    assert reasons[-1] == "succeeded" and reasons.count("preempted") >= 1
    assert any("spot capacity reclaimed (injected)" in e.message for e in s.events(job.id))
    # a trace whose spot capacity disappears after 2 ticks: failover moves the job to on-demand
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"metadata": {"gap_seconds": 3600}, "data": [1] * 2 + [0] * 50}))
    res = spotrain(
        "launch",
        str(recipe),
        "--yes",
        "--no-live",
        "--preempt-trace",
        str(trace),
        "--trace-speed",
        "900",
        "--grace",
        "30s",
    )
    assert res.returncode == 0, res.stdout[-2000:]
    job = s.jobs()[-1]
    atts = s.attempts(job.id)
    assert atts[0].spot and atts[0].end_reason == "preempted"
    assert not atts[-1].spot and atts[-1].end_reason == "succeeded"
    rep = json.loads(spotrain("cost", str(job.id), "--json").stdout)
    assert [r["spot"] for r in rep["attempts"]] == [a.spot == 1 for a in atts]


@pytest.mark.slow(60)
def test_spot_policy_waits_out_a_short_outage_and_meets_the_deadline(env, tmp_path):
    """recovery.policy: spotrain. Spot goes away 8 s in and comes back at 40 s (trace at 900×):
    long enough that the preempted worker has exited (it took 19 s on a loaded machine) while
    spot is still down. With minutes of slack and a short job, waiting costs nothing that
    on-demand later would not (the policy's decision table), so it waits, resumes on spot and
    finishes in time."""
    recipe = write(
        tmp_path,
        tiny_recipe(
            **SLOW,
            train__steps=400,
            train__checkpoints={"every_steps": 20, "every_minutes": None, "keep_last": 2},
            budget={"deadline": "240s"},
            recovery={"policy": "spotrain"},
        ),
    )
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"metadata": {"gap_seconds": 3600}, "data": [1, 1] + [0] * 8 + [1] * 50}))
    res = spotrain(
        "launch",
        str(recipe),
        "--yes",
        "--no-live",
        "--preempt-trace",
        str(trace),
        "--trace-speed",
        "900",
        "--grace",
        "30s",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    s = store()
    job = s.jobs()[-1]
    kinds = [("spot" if a.spot else "on-demand", a.end_reason) for a in s.attempts(job.id)]
    assert kinds == [("spot", "preempted"), ("spot", "succeeded")], kinds
    assert job.status == "SUCCEEDED" and job.ended <= job.deadline
    assert any(
        e.kind == "policy" and e.message.startswith("spotrain: waiting for spot (slack")
        for e in s.events(job.id)
    )
    rep = json.loads(spotrain("cost", str(job.id), "--json").stdout)
    assert math.isclose(sum(r["cost"] for r in rep["attempts"]), s.spend(job.id), rel_tol=1e-12)


@pytest.mark.slow(90)
def test_greedy_policy_moves_a_running_spot_job_to_on_demand_at_the_last_safe_moment(env, tmp_path):
    """recovery.policy: greedy, no checkpoint during the run and a deadline that leaves half the
    work as slack: the work at risk on spot grows until a preemption could no longer be recovered
    in time, so the policy moves the running job to on-demand (the graceful stop saves a
    checkpoint) and it finishes there. The deadline is set from a calibration run of the same
    recipe on this machine, so the test does not depend on its speed."""
    from spotrain.jobs.controller import read_progress
    from spotrain.jobs.limits import DEFAULT_SAVE_SECONDS, EXIT_SECONDS
    from spotrain.jobs.live_policy import RESTART_MARGIN

    base = dict(
        **SLOW,
        train__steps=600,
        train__checkpoints={"every_steps": 100000, "every_minutes": None, "keep_last": 2},
    )
    calib = write(tmp_path, tiny_recipe(**base), name="calib.yaml")
    assert spotrain("launch", str(calib), "--yes", "--no-live").returncode == 0
    s = store()
    a0 = s.attempts(s.jobs()[-1].id)[0]
    prog = read_progress(Path(a0.handle["dir"]))
    start_s, step_s = prog["first_step_time"] - a0.start, prog["step_seconds"]
    work = 600 * step_s
    overhead = RESTART_MARGIN * start_s + 1
    reserve = DEFAULT_SAVE_SECONDS + step_s + EXIT_SECONDS + 4
    # slack at the first step = work/2 + one restart: the switch comes about half-way through
    deadline = start_s + reserve + work + work / 2 + overhead
    recipe = write(
        tmp_path, tiny_recipe(**base, budget={"deadline": f"{deadline:.0f}s"}, recovery={"policy": "greedy"})
    )
    res = spotrain("launch", str(recipe), "--yes", "--no-live", "--grace", "30s", "--force")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    job = s.jobs()[-1]
    atts = s.attempts(job.id)
    kinds = [("spot" if a.spot else "on-demand", a.end_reason) for a in atts]
    assert kinds == [("spot", "switched"), ("on-demand", "succeeded")], (kinds, deadline)
    assert atts[1].first_step == atts[0].last_step + 1  # resumed from the checkpoint the switch saved
    assert job.status == "SUCCEEDED" and job.ended <= job.deadline
    assert any(
        e.kind == "switch" and e.message.startswith("greedy: on-demand in lab/lab-1")
        for e in s.events(job.id)
    )
