"""Forecasts (issue 6): expected and p90 cost and the chance of meeting the deadline, from
the same policy objects run through the simulator; and `spotrain plan` showing them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import spotrain
from spotrain.jobs import forecast
from spotrain.pricing import estimate

TRACES = Path(__file__).parent / "fixtures" / "traces"
CATALOG = Path(__file__).parent / "fixtures" / "catalog" / "v8"


def test_no_preemptions_cost_exactly_spot_for_work_and_one_restart():
    m = forecast.hazard_market(estimate.Hazard(rate_per_hour=0.0))
    f = forecast.forecast(10.0, 0.1, 1.0, 3.0, m, deadline_h=20.0)
    assert f.expected_cost == pytest.approx(10.1, rel=0.01) and f.p90_cost == pytest.approx(f.expected_cost)
    assert f.p_meet_deadline == 1.0 and "hazard model" in f.source


def test_preemptions_raise_cost_and_spread():
    calm = forecast.forecast(
        10.0, 0.2, 1.0, 3.0, forecast.hazard_market(estimate.Hazard(rate_per_hour=0.05)), deadline_h=30.0
    )
    rough = forecast.forecast(
        10.0,
        0.2,
        1.0,
        3.0,
        forecast.hazard_market(estimate.Hazard(rate_per_hour=1.0, outage_hours=1.0)),
        deadline_h=30.0,
    )
    assert rough.expected_cost > calm.expected_cost
    assert rough.p90_cost >= rough.expected_cost
    assert rough.p_meet_deadline == 1.0  # the spotrain policy is deadline-safe
    again = forecast.forecast(
        10.0,
        0.2,
        1.0,
        3.0,
        forecast.hazard_market(estimate.Hazard(rate_per_hour=1.0, outage_hours=1.0)),
        deadline_h=30.0,
    )
    assert again == rough  # seeded


def test_deadline_chances():
    m = forecast.hazard_market(estimate.Hazard(rate_per_hour=1.0, outage_hours=2.0))
    assert (
        forecast.forecast(10.0, 0.2, 1.0, 3.0, m, deadline_h=9.0).p_meet_deadline == 0.0
    )  # shorter than the work
    loose = forecast.forecast(10.0, 0.2, 1.0, 3.0, m, deadline_h=None)
    assert loose.p_meet_deadline is None and loose.expected_hours > 10.0
    risky = forecast.forecast(10.0, 0.2, 1.0, 3.0, m, deadline_h=10.5, policy="eager-next-region")
    assert 0.0 <= risky.p_meet_deadline < 1.0  # never on-demand: outages make it late


def test_trace_market_matches_region_and_accelerator():
    m = forecast.trace_market(TRACES, "us-east-1", "L4")
    assert m is not None and m.scenario.zones == ("us-east-1a_l4_1", "us-east-1b_l4_1")
    assert forecast.trace_market(TRACES, "us-east-1", "H100") is None
    assert forecast.trace_market(TRACES, "eu-west-1", "L4") is None
    f = forecast.forecast(5.0, 0.1, 0.35, 0.8, m, deadline_h=12.0)
    assert f.source.startswith("traces us-east-1a_l4_1.json") and f.p_meet_deadline == 1.0
    assert 5.1 * 0.35 * 0.99 <= f.expected_cost <= 12 * 0.8


def test_plan_shows_forecasts(tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(CATALOG, cat)
    env = {
        "SPOTRAIN_CATALOG_DIR": str(cat),
        "SPOTRAIN_HOME": str(tmp_path / "home"),
        "SPOTRAIN_TRACES": str(TRACES),
    }
    res = spotrain(
        "plan",
        "recipes/gpt2-small.yaml",
        "resources.memory_gb=null",
        "resources.accelerators=[L4:1]",
        "--top",
        "4",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1].split()[-4:] == ["forecast", "p90", "on", "time"]
    assert any(
        l.startswith("forecast: policy spotrain, 64 simulated runs per offer on ")
        and "traces us-east-1a_l4_1.json" in l
        for l in lines
    )
    doc = json.loads(
        spotrain(
            "plan",
            "recipes/gpt2-small.yaml",
            "resources.memory_gb=null",
            "resources.accelerators=[L4:1]",
            "--json",
            env=env,
        ).stdout
    )
    for o in doc["offers"]:
        f = o["forecast"]
        assert (
            f["p90_cost"] >= f["expected_cost"] - 1e-9 and f["p_meet_deadline"] == 1.0
        )  # gpt2-small: 48 h deadline
        if not o["spot"]:
            assert f["source"] == "on-demand: no preemptions"
    bare = json.loads(
        spotrain(
            "plan", "recipes/gpt2-small.yaml", "resources.memory_gb=null", "--json", "--no-forecast", env=env
        ).stdout
    )
    assert all("forecast" not in o for o in bare["offers"])
