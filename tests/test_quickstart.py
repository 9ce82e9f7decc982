"""The Quickstart job: the shipped tiny-gpt recipe, unmodified, trains and its loss clearly falls."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, spotrain


@pytest.mark.slow
def test_tiny_gpt_quickstart_recipe(tmp_path):
    res = spotrain("run", str(ROOT / "recipes" / "tiny-gpt.yaml"), "--workdir", str(tmp_path / "run"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    evs = [json.loads(l) for l in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    steps = [e for e in evs if e["event"] == "step"]
    assert steps[-1]["step"] == 600
    assert steps[0]["loss"] > 7.0 and steps[-1]["loss"] < steps[0]["loss"] - 2.5
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "succeeded"
    assert result["eval"]["val"]["perplexity"] < 200 and result["eval"]["test"]["accuracy"] > 0.1
    assert "generation" in result["eval"]
