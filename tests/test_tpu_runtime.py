"""What of the TPU runtime path runs here (torch_xla cannot be installed on these machines: its
torch is a different build): a TPU attempt without torch_xla fails at once with one line and exit 2,
whether it runs one process or one per chip; off a TPU the XLA hooks change nothing."""

from __future__ import annotations

import pytest

from conftest import spotrain


@pytest.mark.parametrize("nproc", ["1", "8"])
def test_a_tpu_attempt_without_torch_xla_is_a_one_line_error(tmp_path, nproc):
    res = spotrain(
        "run",
        "recipes/tiny-gpt.yaml",
        "--workdir",
        str(tmp_path / "run"),
        "--nproc",
        nproc,
        env={"SPOTRAIN_XLA": "1", "SPOTRAIN_TPU_CHIPS": "8"},
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "runs on a TPU (SPOTRAIN_XLA=1) but torch_xla does not import" in lines[0]
    assert "torch==2.8.0 with torch_xla[tpu]==2.8.0" in lines[0]
    assert not (tmp_path / "run" / "events.jsonl").exists()  # nothing was built


def test_off_a_tpu_the_xla_hooks_change_nothing(monkeypatch):
    import torch

    from spotrain.recipes.runtime import xla

    monkeypatch.delenv("SPOTRAIN_XLA", raising=False)
    state = {"w": torch.ones(2), "nested": [torch.zeros(1)]}
    assert not xla.enabled() and xla.to_host(state) is state and xla.rng_capture() == {}
    xla.require()  # no TPU asked for: nothing to check
