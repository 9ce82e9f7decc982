"""The Quickstart job: `spotrain launch recipes/tiny-gpt.yaml --yes` on the embedded local
backend, on a fresh machine (no catalogs: the built-in price snapshot), ends SUCCEEDED with a
cost summary, the loss clearly falling. One torch thread instead of the recipe's two: beside the
other tests' workers, two OpenMP threads on two busy cores wait on each other at every op."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, spotrain


@pytest.mark.slow(120)
def test_quickstart_launch_of_tiny_gpt(tmp_path):
    env = {"SPOTRAIN_HOME": str(tmp_path / "home")}
    res = spotrain("launch", str(ROOT / "recipes" / "tiny-gpt.yaml"), "train.threads=1", "--yes", env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    assert out.startswith("plan: ") and "emulated" in out.splitlines()[0]
    assert "step 600/600" in out and "RUNNING → SUCCEEDED" in out
    assert "total $" in out.splitlines()[-1] and "(emulated) over 1 attempt(s)" in out.splitlines()[-1]
    job = tmp_path / "home" / "jobs" / "1"
    evs = [json.loads(l) for l in (job / "attempts" / "1" / "events.jsonl").read_text().splitlines()]
    steps = [e for e in evs if e["event"] == "step"]
    assert steps[0]["loss"] > 7.0 and steps[-1]["loss"] < steps[0]["loss"] - 2.5
    result = json.loads((job / "attempts" / "1" / "result.json").read_text())
    assert result["status"] == "succeeded" and result["eval"]["val"]["perplexity"] < 200
    cost = json.loads(spotrain("cost", "1", "--json", env=env).stdout)
    assert cost["total"] > 0 and cost["emulated"] and len(cost["attempts"]) == 1
