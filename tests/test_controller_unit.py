"""The controller's decisions on a scripted backend and an injected clock: no subprocess, no
sleeping — a 10-minute job takes milliseconds. The backend stands in for a cloud (which cannot
run here); the store, the controller and the money rules are the real ones."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from conftest import tiny_recipe
from spotrain.pricing.offer import Offer
from spotrain.launcher.backends.base import AttemptState, Backend

PRICE = 3.6
OFFER = Offer("lab", "lab-1", "", "box", "", 0, 8, 0, spot=False, hourly=PRICE, on_demand_hourly=PRICE, hours=0.1, cost=0.36)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class Scripted(Backend):
    """Attempts that run ``run_for`` seconds and exit 0, or exit 143 two seconds after a SIGTERM;
    the first ``failing_teardowns`` teardowns fail, as a cloud API that does not answer would."""

    name = "scripted"
    emulated = True

    def __init__(self, clock: Clock, run_for: float, failing_teardowns: int = 0) -> None:
        self.clock, self.run_for, self.failing = clock, run_for, failing_teardowns
        self.teardowns: list[float] = []

    def provision(self, *, job_id, attempt, offer, recipe_path, workdir: Path, env) -> dict:
        workdir.mkdir(parents=True, exist_ok=True)
        return {"cluster": f"c-{job_id}-{attempt}", "dir": str(workdir), "log": str(workdir / "attempt.log"), "t0": self.clock(),
                "env": dict(env)}

    def state(self, handle: dict) -> AttemptState:
        now = self.clock()
        if handle.get("term") is not None and now >= handle["term"] + 2:
            return AttemptState(False, 143, ended_at=handle["term"] + 2)
        if now >= handle["t0"] + self.run_for:
            return AttemptState(False, 0, ended_at=handle["t0"] + self.run_for)
        return AttemptState(True)

    def preempt(self, handle: dict) -> None:
        handle.setdefault("term", self.clock())

    def kill(self, handle: dict) -> None:
        handle["term"] = self.clock() - 2

    def log_path(self, handle: dict) -> Path:
        return Path(handle["log"])

    def release(self, handle: dict) -> None:
        if handle.get("released"):
            return
        self.teardowns.append(self.clock())
        if self.failing > 0:
            self.failing -= 1
            handle["release_error"] = "the API server did not answer"
            return
        handle.pop("release_error", None)
        handle["released"] = self.clock()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTRAIN_HOME", str(tmp_path / "home"))
    from spotrain.jobs.service import open_store

    return open_store()


def make_job(store, tmp_path, clock: Clock, max_cost=None, deadline=None) -> int:
    job = store.create_job(name="t", backend="scripted", recipe_yaml=yaml.safe_dump(tiny_recipe()), recipe_dir=str(tmp_path),
                           offers=[OFFER], options={}, workdir=str(tmp_path / "job"), max_cost=max_cost, deadline=deadline, now=clock())
    (tmp_path / "job").mkdir(exist_ok=True)
    return job


def run(store, backend, job_id, clock):
    from spotrain.jobs.controller import Controller

    return Controller(store, backend, job_id, clock=clock, sleep=clock.sleep, tick=1.0, pid=4242).run()


def contiguous(ledger) -> bool:
    return all(math.isclose(a.end, b.start) for a, b in zip(ledger, ledger[1:]))


def test_a_failed_teardown_is_retried_until_the_cluster_is_gone_and_billed_meanwhile(store, tmp_path):
    clock = Clock()
    t0 = clock()
    backend = Scripted(clock, run_for=100, failing_teardowns=2)
    job = make_job(store, tmp_path, clock)
    assert run(store, backend, job, clock).value == "SUCCEEDED"
    # the teardown at the end failed, so did the retry right after it; the next came 30 s later
    assert len(backend.teardowns) == 3 and backend.teardowns[2] - backend.teardowns[1] == pytest.approx(30.0)
    att = store.attempts(job)[0]
    assert att.handle["released"] == backend.teardowns[-1]
    kinds = [e.kind for e in store.events(job)]
    assert kinds.count("teardown_failed") == 1 and kinds[-1] == "teardown"
    msgs = [e.message for e in store.events(job) if e.kind.startswith("teardown")]
    assert "teardown try 2" in msgs[0] and msgs[1].endswith("torn down after 3 tries")
    ledger = store.ledger(job)
    assert contiguous(ledger) and ledger[0].start == pytest.approx(t0)
    # billed until the cluster was gone, not until the training ended
    assert ledger[-1].end == pytest.approx(backend.teardowns[-1])
    assert store.spend(job) == pytest.approx(PRICE * (backend.teardowns[-1] - t0) / 3600)


def test_budget_stop_starts_before_the_cap_and_spend_stays_within_a_tick(store, tmp_path):
    clock = Clock()
    cap = PRICE * 600 / 3600  # ten minutes of the box (start-up on a cloud alone is ~6)
    backend = Scripted(clock, run_for=10_000)
    job = make_job(store, tmp_path, clock, max_cost=cap)
    assert run(store, backend, job, clock).value == "STOPPED_BUDGET"
    att = store.attempts(job)[0]
    assert (att.end_reason, att.exit_code) == ("budget", 143)
    assert store.spend(job) <= cap + PRICE * 1.0 / 3600
    assert contiguous(store.ledger(job))
    # the attempt was told its stop-by moment: the cap at its price, less the 2-tick kill window
    assert float(att.handle["env"]["SPOTRAIN_STOP_BY"]) == pytest.approx(att.start + 600 - 2)


def test_deadline_stop(store, tmp_path):
    clock = Clock()
    backend = Scripted(clock, run_for=10_000)
    job = make_job(store, tmp_path, clock, deadline=clock() + 120)
    assert run(store, backend, job, clock).value == "STOPPED_DEADLINE"
    att = store.attempts(job)[0]
    assert att.end_reason == "deadline" and att.end <= store.job(job).deadline


def test_a_relaunch_needs_a_cap_that_can_make_progress(store, tmp_path):
    """After a preemption with little of the cap left, the controller stops for budget instead of
    paying for a start-up and a stop that would train nothing."""
    from spotrain.jobs.states import EndReason, JobStatus

    clock = Clock()
    backend = Scripted(clock, run_for=10_000)
    job = make_job(store, tmp_path, clock, max_cost=PRICE * 30 / 3600)  # 30 s left: less than start-up + reserve
    a = store.start_attempt(job, OFFER, "scripted", True, clock())
    for s in (JobStatus.PROVISIONING, JobStatus.RUNNING):
        store.transition(job, s, clock())
    store.bill(a, clock() + 5)
    store.end_attempt(a, EndReason.PREEMPTED, 143, clock() + 5)
    store.transition(job, JobStatus.PREEMPTED, clock() + 5)
    clock.t += 6
    assert run(store, backend, job, clock).value == "STOPPED_BUDGET"
    assert len(store.attempts(job)) == 1  # nothing relaunched
    assert "cannot pay for another attempt's start-up" in store.job(job).message
