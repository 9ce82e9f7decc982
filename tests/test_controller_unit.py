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
OFFER = Offer(
    "lab",
    "lab-1",
    "",
    "box",
    "",
    0,
    8,
    0,
    spot=False,
    hourly=PRICE,
    on_demand_hourly=PRICE,
    hours=0.1,
    cost=0.36,
)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t
        self.hooks: list[tuple[float, object]] = []  # (time, fn): run once when the clock passes it

    def __call__(self) -> float:
        return self.t

    def at(self, t: float, fn) -> None:
        self.hooks.append((t, fn))

    def sleep(self, s: float) -> None:
        self.t += s
        for h in [h for h in self.hooks if h[0] <= self.t]:
            self.hooks.remove(h)
            h[1]()


class Scripted(Backend):
    """Attempts that run ``run_for`` seconds and exit 0, or exit 143 two seconds after a SIGTERM;
    the first ``failing_teardowns`` teardowns fail, as a cloud API that does not answer would."""

    name = "scripted"
    emulated = True

    def __init__(
        self, clock: Clock, run_for: float, failing_teardowns: int = 0, exits: dict | None = None
    ) -> None:
        self.clock, self.run_for, self.failing = clock, run_for, failing_teardowns
        self.exits = (
            exits or {}
        )  # attempt number → exit code at the end of run_for (default 0; None: vanished)
        self.teardowns: list[float] = []
        self.provisioned: list = []

    def provision(self, *, job_id, attempt, offer, recipe_path, workdir: Path, env) -> dict:
        workdir.mkdir(parents=True, exist_ok=True)
        self.provisioned.append(offer)
        return {
            "cluster": f"c-{job_id}-{attempt}",
            "dir": str(workdir),
            "log": str(workdir / "attempt.log"),
            "t0": self.clock(),
            "env": dict(env),
            "code": self.exits.get(attempt, 0),
        }

    def state(self, handle: dict) -> AttemptState:
        now = self.clock()
        if handle.get("term") is not None and now >= handle["term"] + 2:
            return AttemptState(False, 143, ended_at=handle["term"] + 2)
        if now >= handle["t0"] + self.run_for:
            return AttemptState(False, handle["code"], ended_at=handle["t0"] + self.run_for)
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


def make_job(store, tmp_path, clock: Clock, max_cost=None, deadline=None, offers=(OFFER,), **recipe) -> int:
    job = store.create_job(
        name="t",
        backend="scripted",
        recipe_yaml=yaml.safe_dump(tiny_recipe(**recipe)),
        recipe_dir=str(tmp_path),
        offers=list(offers),
        options={},
        workdir=str(tmp_path / "job"),
        max_cost=max_cost,
        deadline=deadline,
        now=clock(),
    )
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
    job = make_job(
        store, tmp_path, clock, max_cost=PRICE * 30 / 3600
    )  # 30 s left: less than start-up + reserve
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


SPOT_1 = Offer(
    "lab",
    "lab-1",
    "",
    "box",
    "",
    0,
    8,
    0,
    spot=True,
    hourly=1.2,
    on_demand_hourly=PRICE,
    hours=0.12,
    cost=0.144,
)
SPOT_2 = Offer(
    "lab",
    "lab-2",
    "",
    "box",
    "",
    0,
    8,
    0,
    spot=True,
    hourly=1.3,
    on_demand_hourly=PRICE,
    hours=0.12,
    cost=0.156,
)


def test_recovery_after_preemptions_follows_the_strategy_and_bills_every_attempt(store, tmp_path):
    """failover: preempted twice in lab-1 → lab-2 spot; each attempt billed at its own price, one
    ledger with no gap inside an attempt, the job's spend the sum of them."""
    from spotrain.jobs.states import Request

    clock = Clock()
    backend = Scripted(clock, run_for=300)
    job = make_job(store, tmp_path, clock, offers=(SPOT_1, SPOT_2, OFFER))
    for t in (50, 120):
        clock.at(clock() + t, lambda: store.request(job, Request.PREEMPT, clock()))
    assert run(store, backend, job, clock).value == "SUCCEEDED"
    atts = store.attempts(job)
    assert [(a.region, a.spot, a.end_reason) for a in atts] == [
        ("lab-1", True, "preempted"),
        ("lab-1", True, "preempted"),
        ("lab-2", True, "succeeded"),
    ]
    assert [a.price for a in atts] == [1.2, 1.2, 1.3] and [o.key for o in backend.provisioned] == [
        SPOT_1.key,
        SPOT_1.key,
        SPOT_2.key,
    ]
    for a in atts:
        mine = [e for e in store.ledger(job) if e.attempt_id == a.id]
        assert (
            contiguous(mine)
            and mine[0].start == pytest.approx(a.start)
            and mine[-1].end == pytest.approx(a.end)
        )
        assert a.cost == pytest.approx(a.price * (a.end - a.start) / 3600)
    assert store.spend(job) == pytest.approx(math.fsum(a.cost for a in atts))
    assert store.job(job).requested is None


def test_a_cancel_asked_while_the_controller_preempts_is_not_lost(store, tmp_path):
    """The person's cancel lands between the controller reading the job and moving its request on:
    the controller's move fails (compare and set), and the job ends CANCELLED, not preempted and
    relaunched."""
    from spotrain.jobs.states import Request

    clock = Clock()
    backend = Scripted(clock, run_for=10_000)
    job = make_job(store, tmp_path, clock)
    real_preempt = backend.preempt

    def preempt_then_cancel(handle):
        real_preempt(handle)
        if store.job(job).requested is Request.PREEMPT:
            store.request(job, Request.CANCEL, clock())

    backend.preempt = preempt_then_cancel
    clock.at(clock() + 30, lambda: store.request(job, Request.PREEMPT, clock()))
    assert run(store, backend, job, clock).value == "CANCELLED"
    assert len(store.attempts(job)) == 1 and store.attempts(job)[0].end_reason == "cancelled"


@pytest.mark.parametrize(
    "code,status,end_reason,attempts",
    [
        (2, "FAILED_SETUP", "setup_failed", 1),  # bad recipe or data: retrying cannot help
        (1, "FAILED", "crashed", 1),  # the training code crashed
        (None, "SUCCEEDED", "lost", 2),  # vanished without an exit status: a lost node, recovered
        (137, "SUCCEEDED", "lost", 2),  # SIGKILLed by someone else: a lost node too
        (4, "STOPPED_BUDGET", "budget", 1),  # the attempt stopped itself at its stop-by moment
        (5, "STOPPED_BUDGET", "budget", 1),  # its watchdog ended it there
    ],
)
def test_exit_codes(store, tmp_path, code, status, end_reason, attempts):
    clock = Clock()
    backend = Scripted(clock, run_for=60, exits={1: code})
    cap = PRICE * 3600 / 3600 if code in (4, 5) else None
    job = make_job(store, tmp_path, clock, max_cost=cap)
    assert run(store, backend, job, clock).value == status
    atts = store.attempts(job)
    assert len(atts) == attempts and atts[0].end_reason == end_reason and atts[0].exit_code == code
    assert atts[0].end == pytest.approx(atts[0].start + 60)  # billed up to the attempt's own end
    for a in atts:
        assert contiguous([e for e in store.ledger(job) if e.attempt_id == a.id])
    assert store.spend(job) == pytest.approx(math.fsum(a.cost for a in atts))


def test_adoption_after_a_stale_heartbeat_bills_the_gap_and_runs_the_attempt_once(store, tmp_path):
    """A controller died 90 s into an attempt. A new one takes over the lease, logs the adoption,
    watches the same attempt (no relaunch) and bills the gap, so the ledger has no hole."""
    from spotrain.jobs.states import JobStatus

    clock = Clock()
    t0 = clock()
    backend = Scripted(clock, run_for=300)
    job = make_job(store, tmp_path, clock)
    a = store.start_attempt(job, OFFER, "scripted", True, t0)
    handle = backend.provision(
        job_id=job,
        attempt=1,
        offer=OFFER,
        recipe_path=tmp_path / "job" / "recipe.yaml",
        workdir=tmp_path / "job" / "attempts" / "1",
        env={},
    )
    store.set_handle(a, handle)
    for s in (JobStatus.PROVISIONING, JobStatus.RUNNING):
        store.transition(job, s, t0)
    store.claim_controller(job, 999_999, t0, 15)
    store.bill(a, t0 + 10)  # the dead controller's last bill
    clock.t = t0 + 100  # its heartbeat (t0) is 100 s old
    assert run(store, backend, job, clock).value == "SUCCEEDED"
    atts = store.attempts(job)
    assert len(atts) == 1 and atts[0].end == pytest.approx(t0 + 300)
    adopt = [e for e in store.events(job) if e.kind == "adopt"]
    assert len(adopt) == 1 and "controller 999999 stopped heartbeating 100 s ago" in adopt[0].message
    ledger = store.ledger(job)
    assert (
        contiguous(ledger)
        and ledger[0].start == pytest.approx(t0)
        and ledger[-1].end == pytest.approx(t0 + 300)
    )
    assert store.spend(job) == pytest.approx(PRICE * 300 / 3600)


def test_a_live_controller_is_not_displaced(store, tmp_path):
    clock = Clock()
    job = make_job(store, tmp_path, clock)
    assert store.claim_controller(job, 999_999, clock(), 15)
    clock.t += 5  # its heartbeat is fresh (5 s < 15 s stale)
    # another host's controller holds it: no host lock helps, the lease is not taken
    assert not store.claim_controller(job, 4242, clock(), 15)
    assert store.job(job).controller_pid == 999_999
