"""Jobs core, without processes: state machine, recovery strategies, preemption schedules,
the store's ledger, migrations."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from sqlalchemy import text

from spotrain.pricing.offer import Offer
from spotrain.errors import SpotrainError
from spotrain.jobs import recovery
from spotrain.jobs.db import SCHEMA_VERSION, connect
from spotrain.jobs.preemption import Injector
from spotrain.units import parse_seconds
from spotrain.jobs.states import (
    REQUEST_TRANSITIONS,
    TERMINAL,
    TRANSITIONS,
    EndReason,
    JobStatus,
    Request,
    TransitionError,
    check_request,
    check_transition,
)
from spotrain.jobs.store import JobNotFound, Store


def test_state_machine_is_complete_and_terminal_states_are_final():
    assert set(TRANSITIONS) == set(JobStatus)
    for s in JobStatus:
        assert s.is_terminal() == (s in TERMINAL)
        if s.is_terminal():
            assert TRANSITIONS[s] == frozenset()
    for required in (
        "PENDING",
        "PROVISIONING",
        "RUNNING",
        "PREEMPTED",
        "RECOVERING",
        "SUCCEEDED",
        "FAILED_SETUP",
        "FAILED",
        "FAILED_NO_RESOURCE",
        "CANCELLED",
        "STOPPED_BUDGET",
        "STOPPED_DEADLINE",
    ):
        assert JobStatus(required)
    check_transition(JobStatus.RUNNING, JobStatus.PREEMPTED)
    with pytest.raises(TransitionError, match="SUCCEEDED to RUNNING"):
        check_transition(JobStatus.SUCCEEDED, JobStatus.RUNNING)
    with pytest.raises(TransitionError):
        check_transition(JobStatus.PENDING, JobStatus.SUCCEEDED)


def offer(region, spot, cloud="aws", price=1.0):
    return Offer(
        cloud, region, "", "g6.xlarge", "L4", 1, 4, 16, spot=spot, hourly=price, on_demand_hourly=3.0
    )


OFFERS = [offer("r1", True), offer("r2", True), offer("r3", True), offer("r1", False)]


def test_recovery_strategies_follow_their_event_sequences():
    assert recovery.choose("failover", OFFERS, [], True).region == "r1"
    assert recovery.choose("failover", OFFERS, [], False) == OFFERS[3], "no spot capacity: start on-demand"
    h = [OFFERS[0]]
    assert recovery.choose("same-region", OFFERS, h, True) == OFFERS[0]
    assert recovery.choose("same-region", OFFERS, h, False) is None
    seq, hist = [], [OFFERS[0]]
    for _ in range(3):
        nxt = recovery.choose("next-region", OFFERS, hist, True)
        seq.append(nxt.region)
        hist.append(nxt)
    assert seq == ["r2", "r3", "r1"]
    assert recovery.choose("next-region", OFFERS, hist, False) is None, (
        "EAGER_NEXT_REGION never goes on-demand"
    )
    assert recovery.choose("on-demand-fallback", OFFERS, h, True) == OFFERS[3]
    # failover: R1s → R1s → R2s → on-demand after 3 spot preemptions
    hist = [OFFERS[0]]
    picks = []
    for _ in range(3):
        nxt = recovery.choose("failover", OFFERS, hist, True)
        picks.append((nxt.region, nxt.spot))
        hist.append(nxt)
    assert picks == [("r1", True), ("r2", True), ("r1", False)]
    assert recovery.choose("failover", OFFERS, [OFFERS[0]], False) == OFFERS[3]


def test_injector_hazard_is_seeded_and_trace_replays(tmp_path):
    a = Injector(start=0.0, every=10.0, seed=7)
    b = Injector(start=0.0, every=10.0, seed=7)
    times_a = [t for t in range(0, 200) if a.due(float(t), -1.0)]
    times_b = [t for t in range(0, 200) if b.due(float(t), -1.0)]
    assert times_a == times_b and 8 <= len(times_a) <= 40
    assert [
        t for t in range(0, 200) if Injector(start=0.0, every=10.0, seed=8).due(float(t), -1.0)
    ] != times_a
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"metadata": {"gap_seconds": 600}, "data": [1, 1, 0, 1]}))
    inj = Injector.from_options({"preempt_trace": str(trace), "trace_speed": 600.0}, start=100.0)
    assert [inj.spot_available(100.0 + s) for s in (0, 1, 2, 3, 4)] == [True, True, False, True, True]
    assert inj.due(102.5, 100.0) and not inj.due(103.5, 100.0)
    assert parse_seconds("45s") == 45 and parse_seconds("2m") == 120 and parse_seconds("250ms") == 0.25
    with pytest.raises(SpotrainError, match="duration 'soon'"):
        parse_seconds("soon")
    # the one duration parser serves recipes (a unit required), schedules (days) and the CLI alike
    from spotrain.recipes.schema.budget import parse_duration

    assert (
        parse_seconds("7d") == 7 * 86400
        and parse_seconds("30") == 30
        and parse_duration("36h").total_seconds() == 36 * 3600
    )
    with pytest.raises(ValueError, match="is not NUMBER\\+UNIT"):
        parse_seconds("30", unit_required=True)


def test_store_ledger_sums_attempts_exactly(tmp_path):
    store = Store(connect(f"sqlite:///{tmp_path / 'j.db'}"))
    jid = store.create_job(
        name="x",
        backend="local",
        recipe_yaml="",
        recipe_dir="",
        offers=[],
        options={},
        workdir="",
        max_cost=None,
        deadline=None,
        now=1000.0,
    )
    a1 = store.start_attempt(jid, offer("r1", True, price=0.36), "local", True, 1000.0)
    for t in range(1001, 1011):
        store.bill(a1, float(t))
    store.bill(a1, 1010.0)  # nothing new: not billed twice
    store.end_attempt(a1, EndReason.PREEMPTED, 143, 1010.0)
    a2 = store.start_attempt(jid, offer("r1", False, price=1.08), "local", True, 1012.0)
    store.bill(a2, 1017.5)
    store.end_attempt(a2, EndReason.SUCCEEDED, 0, 1017.5)
    atts = store.attempts(jid)
    assert [a.number for a in atts] == [1, 2]
    assert atts[0].cost == pytest.approx(0.36 * 10 / 3600) and atts[1].cost == pytest.approx(
        1.08 * 5.5 / 3600
    )
    assert (
        store.spend(jid)
        == math.fsum(e.amount for e in store.ledger(jid))
        == pytest.approx(math.fsum(a.cost for a in atts))
    )
    spans = [(e.start, e.end) for e in store.ledger(jid) if e.attempt_id == a1]
    assert (
        spans[0][0] == 1000.0
        and spans[-1][1] == 1010.0
        and all(x[1] == y[0] for x, y in zip(spans, spans[1:]))
    )
    with pytest.raises(JobNotFound, match="no job 99"):
        store.job(99)


def test_transition_rules_and_requests(tmp_path):
    store = Store(connect(f"sqlite:///{tmp_path / 'j.db'}"))
    jid = store.create_job(
        name="x",
        backend="local",
        recipe_yaml="",
        recipe_dir="",
        offers=[],
        options={},
        workdir="",
        max_cost=None,
        deadline=None,
        now=0.0,
    )
    store.transition(jid, JobStatus.PROVISIONING, 1.0)
    with pytest.raises(TransitionError):
        store.transition(jid, JobStatus.PENDING, 2.0)
    store.request(jid, Request.PREEMPT, 2.0)
    assert store.job(jid).requested is Request.PREEMPT
    # the controller moves it on only from what it last saw: a cancel asked meanwhile is not overwritten
    store.request(jid, Request.CANCEL, 2.5)
    assert not store.set_request(jid, Request.PREEMPT, Request.PREEMPTING)
    assert store.job(jid).requested is Request.CANCEL
    assert store.set_request(jid, Request.CANCEL, Request.STOPPING_CANCEL)
    with pytest.raises(SpotrainError, match="job 1: a job stopping for cancel cannot be asked to preempt"):
        store.request(jid, Request.PREEMPT, 2.6)
    with pytest.raises(TransitionError, match="stopping for cancel cannot be asked to switching"):
        store.set_request(jid, Request.STOPPING_CANCEL, Request.SWITCHING)
    with pytest.raises(ValueError):
        store.request(jid, Request.SWITCHING, 2.7)  # the controller's own, not a person's
    store.clear_request(jid)
    assert store.job(jid).requested is None
    store.transition(jid, JobStatus.CANCELLED, 3.0)
    assert store.job(jid).ended == 3.0
    with pytest.raises(SpotrainError, match="already ended \\(CANCELLED\\)"):
        store.request(jid, Request.CANCEL, 4.0)
    kinds = [e.kind for e in store.events(jid)]
    assert kinds == ["created", "status", "request", "request", "status"]


def test_request_table_covers_every_request():
    """Every request has a row; a stop is never turned into a preemption or a switch; a person's cancel
    can follow anything but a cancel already under way; only the controller moves a cancel on."""
    assert set(REQUEST_TRANSITIONS) == set(Request) | {None}
    for old, allowed in REQUEST_TRANSITIONS.items():
        if old is not None and old.stopping:
            assert not allowed & {Request.PREEMPT, Request.PREEMPTING, Request.SWITCHING}
        if old not in (Request.CANCEL, Request.STOPPING_CANCEL):
            assert Request.CANCEL in allowed, old
        check_request(old, None)  # an ended attempt clears any request
    assert REQUEST_TRANSITIONS[Request.CANCEL] == {Request.STOPPING_CANCEL}
    assert [r.reason for r in Request if r.stopping] == ["cancel", "budget", "deadline"] and Request.stop(
        "budget"
    ) is Request.STOPPING_BUDGET


def test_controller_lease_is_exclusive_until_stale(tmp_path):
    store = Store(connect(f"sqlite:///{tmp_path / 'j.db'}"))
    jid = store.create_job(
        name="x",
        backend="local",
        recipe_yaml="",
        recipe_dir="",
        offers=[],
        options={},
        workdir="",
        max_cost=None,
        deadline=None,
        now=0.0,
    )
    assert store.claim_controller(jid, 111, 100.0, stale_after=15)
    assert not store.claim_controller(jid, 222, 105.0, stale_after=15)
    assert store.heartbeat(jid, 111, 110.0) and not store.heartbeat(jid, 222, 110.0)
    assert store.claim_controller(jid, 222, 126.0, stale_after=15)  # 111 went silent
    assert not store.heartbeat(jid, 111, 127.0)


def test_schema_is_versioned_and_newer_databases_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    eng = connect(url)
    with eng.connect() as c:
        assert c.execute(text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    connect(url)  # idempotent
    with eng.begin() as c:
        c.execute(text("UPDATE schema_version SET version = 99"))
    with pytest.raises(SpotrainError, match="schema version 99, newer than this spotrain"):
        connect(url)


def test_offers_round_trip_through_the_job_row_as_the_one_offer_type(tmp_path):
    """The planner's offers go into the job row as JSON and come back as ``Offer`` (a managed one with its
    choices); an attempt's offer too. Unknown machine sizes are 0, not NaN, so offers compare equal."""
    from spotrain.launcher.backends.skypilot import managed_offer

    store = Store(connect(f"sqlite:///{tmp_path / 'j.db'}"))
    planned = [
        replace(offer("r1", True), hours=2.0, cost=2.0, on_demand_cost=6.0),
        offer("r2", False, price=3.0),
    ]
    managed = managed_offer(planned)
    assert (
        managed.managed
        and managed.hourly == 3.0
        and managed.spot
        and [c.region for c in managed.choices] == ["r1", "r2"]
    )
    jid = store.create_job(
        name="x",
        backend="sky",
        recipe_yaml="",
        recipe_dir="",
        offers=planned + [managed],
        options={},
        workdir="",
        max_cost=None,
        deadline=None,
        now=1000.0,
    )
    back = store.job(jid).offers
    assert all(isinstance(o, Offer) for o in back) and back == planned + [managed]
    assert back[0].savings == pytest.approx(1 - 2.0 / 6.0) and back[1].cost is None
    assert back[2].choices == managed.choices and not back[0].managed
    a = store.start_attempt(jid, back[2], "sky", False, 1000.0)
    att = store.attempt(a)
    assert att.offer == managed and (att.cloud, att.spot, att.price) == ("skypilot", True, 3.0)
    nan = Offer(
        "slurm",
        "x",
        "",
        "2CPU--4GB",
        "",
        float("nan"),
        float("nan"),
        float("nan"),
        spot=False,
        hourly=0.1,
        on_demand_hourly=0.1,
    )
    assert nan == Offer.from_json(nan.to_json()) and nan.vcpus == 0.0
    assert json.dumps(nan.to_json(), allow_nan=False)
