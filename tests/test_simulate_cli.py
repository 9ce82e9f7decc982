"""`spotrain simulate` end to end through the CLI (issue 6), on small fixture traces and, when
present, on the shared Can't Be Late traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, spotrain

TRACES = Path(__file__).parent / "fixtures" / "traces"
SHARED = ROOT.parent / "shared" / "data" / "spot-traces"
SUMMARY_KEYS = {
    "policy",
    "deadline_hours",
    "overhead_hours",
    "runs",
    "mean_cost_ratio",
    "p95_cost_ratio",
    "miss_rate",
    "mean_gap_to_optimal",
}
SAFE = ("on-demand", "greedy", "uniform-progress", "spotrain", "optimal")
ARGS = (
    "--work-hours",
    "4",
    "--deadline-hours",
    "5,8",
    "--overhead-hours",
    "0.1,0.3",
    "--starts",
    "3",
    "--workers",
    "1",
)


def sim(*args: str):
    res = spotrain("simulate", "--traces", str(TRACES), *args)
    return res


def test_json_summary_and_runs_single_zone():
    res = sim(*ARGS, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == {"summary", "runs"}
    assert all(set(s) == SUMMARY_KEYS for s in doc["summary"])
    # 2 files × 3 starts × 2 overheads × 2 deadlines × 6 policies
    assert len(doc["runs"]) == 2 * 3 * 2 * 2 * 6
    assert {s["runs"] for s in doc["summary"]} == {2 * 3}
    by = {(s["policy"], s["deadline_hours"], s["overhead_hours"]): s for s in doc["summary"]}
    for (policy, d, oh), s in by.items():
        if policy in SAFE:
            assert s["miss_rate"] == 0, (policy, d, oh)
        if policy == "on-demand":
            assert s["mean_cost_ratio"] == pytest.approx(1.0)
        if policy == "optimal":
            assert s["mean_gap_to_optimal"] == 0
    for r in doc["runs"]:
        if r["deadline_met"]:
            assert r["cost"] >= r["optimal_cost"] - 1e-9, r  # nothing beats the omniscient optimum
        assert r["gap_to_optimal"] == pytest.approx((r["cost"] - r["optimal_cost"]) / r["optimal_cost"])
        assert r["zones"] == 1


def test_multi_zone_and_determinism():
    a = sim(
        *ARGS,
        "--multi-zone",
        "--json",
        "--policy",
        "spotrain",
        "--policy",
        "eager-next-region",
        "--policy",
        "greedy",
    )
    assert a.returncode == 0, a.stderr
    runs = json.loads(a.stdout)["runs"]
    assert {r["zones"] for r in runs} == {2} and {r["policy"] for r in runs} == {
        "spotrain",
        "eager-next-region",
        "greedy",
    }
    again = sim(
        *ARGS,
        "--multi-zone",
        "--json",
        "--policy",
        "spotrain",
        "--policy",
        "eager-next-region",
        "--policy",
        "greedy",
    )
    assert again.stdout == a.stdout  # same seed, same runs
    other = json.loads(sim(*ARGS, "--multi-zone", "--json", "--policy", "greedy", "--seed", "1").stdout)[
        "runs"
    ]
    assert {r["start_tick"] for r in other} != {r["start_tick"] for r in runs}
    parallel = sim(
        *ARGS[:-2],
        "--multi-zone",
        "--json",
        "--policy",
        "spotrain",
        "--policy",
        "eager-next-region",
        "--policy",
        "greedy",
        "--workers",
        "2",
    )
    assert parallel.stdout == a.stdout  # processes do not change results


def test_readable_tables():
    res = sim(*ARGS)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("2 scenario(s), 2 zone(s), 3 start(s) each; 4 h of work")
    assert out.count("\ndeadline ") == 4 and "deadline 8 h, restart overhead 0.3 h" in out
    block = out.split("deadline 5 h, restart overhead 0.1 h\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[0].split()[:2] == ["policy", "runs"]
    assert [l.split()[0] for l in block[2:]] == [
        "on-demand",
        "greedy",
        "uniform-progress",
        "eager-next-region",
        "spotrain",
        "optimal",
    ]


def test_checkpoint_interval_costs_work_and_nodes_need_capacity():
    free = json.loads(sim(*ARGS, "--json", "--policy", "eager-next-region").stdout)["runs"]
    ck = json.loads(sim(*ARGS, "--json", "--policy", "eager-next-region", "--checkpoint-hours", "1").stdout)[
        "runs"
    ]
    assert sum(r["lost_h"] for r in free) == 0 and sum(r["lost_h"] for r in ck) > 0
    many = json.loads(sim(*ARGS, "--json", "--policy", "greedy", "--nodes", "2").stdout)["runs"]
    assert all(r["spot_h"] == 0 for r in many)  # the traces never have 2 instances


def test_a_deadline_no_schedule_can_meet_is_reported_not_broken():
    # 4 h of work, a 4 h deadline and a restart: nobody finishes in time; JSON stays strict
    res = sim(
        "--work-hours",
        "4",
        "--deadline-hours",
        "4",
        "--overhead-hours",
        "0.1",
        "--starts",
        "1",
        "--json",
        "--workers",
        "1",
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    by = {s["policy"]: s for s in doc["summary"]}
    assert by["optimal"]["miss_rate"] == 1 and by["optimal"]["mean_cost_ratio"] is None
    assert by["on-demand"]["miss_rate"] == 1 and by["on-demand"]["mean_cost_ratio"] == pytest.approx(1.0)
    assert all(r["gap_to_optimal"] is None for r in doc["runs"])
    table = sim(
        "--work-hours",
        "4",
        "--deadline-hours",
        "4",
        "--overhead-hours",
        "0.1",
        "--starts",
        "1",
        "--workers",
        "1",
    )
    assert table.returncode == 0
    assert [l.split() for l in table.stdout.splitlines() if l.startswith("optimal")] == [
        ["optimal", "2", "-", "-", "100.0%", "-"]
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--traces", "/nonexistent"), "/nonexistent: no such trace file or folder"),
        (
            ("--traces", str(TRACES), "--deadline-hours", "3"),
            "--deadline-hours 3 is shorter than --work-hours 48",
        ),
        (
            ("--traces", str(TRACES), "--deadline-hours", "a,b"),
            "--deadline-hours 'a,b': write hours separated by commas",
        ),
        (
            ("--traces", str(TRACES), "--overhead-hours", "-1"),
            "--overhead-hours '-1': every value must be zero or more hours",
        ),
        (
            ("--traces", str(TRACES), "--policy", "fastest"),
            "unknown policy 'fastest': choose from on-demand, greedy",
        ),
    ],
)
def test_bad_input_is_one_line(args, message):
    res = spotrain("simulate", *args)
    assert res.returncode == 2 and res.stderr.startswith(f"error: {message}"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_bad_trace_files_are_one_line(tmp_path):
    (tmp_path / "a.json").write_text('{"data": [1, 0]}')
    res = spotrain("simulate", "--traces", str(tmp_path))
    assert res.returncode == 2 and "a.json: not a spot trace" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "a.json").write_text('{"metadata": {"gap_seconds": 60}, "data": [1, 0]}')
    (tmp_path / "b.json").write_text('{"metadata": {"gap_seconds": 30}, "data": [1, 0]}')
    res = spotrain("simulate", "--traces", str(tmp_path), "--multi-zone")
    assert res.returncode == 2 and "zones of one scenario must share gap_seconds" in res.stderr


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/spot-traces")
def test_shared_trace_paper_setting():
    f = SHARED / "preemption" / "1-node" / "aws-04-22-2023" / "us-west-2b_v100_1.json"
    res = spotrain(
        "simulate",
        "--traces",
        str(f),
        "--starts",
        "2",
        "--deadline-hours",
        "52,92",
        "--overhead-hours",
        "0.1",
        "--json",
        "--workers",
        "1",
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    for s in doc["summary"]:
        if s["policy"] in SAFE:
            assert s["miss_rate"] == 0
    assert all(r["step_seconds"] == 32 for r in doc["runs"])  # the trace's own tick


def test_start_ticks_run_exactly_those_offsets():
    res = sim(
        "--work-hours",
        "4",
        "--deadline-hours",
        "5",
        "--overhead-hours",
        "0.1",
        "--start-ticks",
        "0,7,3",
        "--policy",
        "greedy",
        "--policy",
        "uniform-progress",
        "--workers",
        "1",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    assert sorted({r["start_tick"] for r in runs}) == [0, 3, 7]
    assert len(runs) == 2 * 3 * 2  # 2 files × 3 starts × 2 policies
    bad = sim("--start-ticks", "1,x")
    assert bad.returncode == 2 and "--start-ticks '1,x': give whole trace ticks" in bad.stderr
    far = sim("--start-ticks", "99999999", "--workers", "1")
    assert far.returncode == 2 and "--start-ticks 99999999: scenario" in far.stderr
