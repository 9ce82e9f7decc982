"""Exactness: a run SIGKILLed at any moment — including mid-checkpoint — and restarted ends
with bit-identical weights and the same loss trajectory as an uninterrupted run."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import spotrain, spotrain_popen, tiny_recipe


def losses(workdir: Path) -> dict[int, float]:
    """Step → loss; a step logged again after a resume overwrites the earlier entry."""
    out = {}
    for line in (workdir / "events.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["event"] == "step":
            out[ev["step"]] = ev["loss"]
    return out


def final_state(workdir: Path, step: int) -> tuple[dict, dict]:
    ck = workdir / "checkpoints" / f"step-{step:08d}"
    return (
        torch.load(ck / "model.pt", weights_only=False),
        torch.load(ck / "optimizer.pt", weights_only=False),
    )


def assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"tensor differs at {where}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def wait_for_step(workdir: Path, step: int, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early with {proc.returncode}: {proc.stdout.read()}")
        if (workdir / "events.jsonl").exists() and any(s >= step for s in losses_partial(workdir)):
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached")


def losses_partial(workdir: Path) -> list[int]:
    steps = []
    for line in (workdir / "events.jsonl").read_text().splitlines():
        if line.endswith("}") and '"event":"step"' in line:
            steps.append(json.loads(line)["step"])
    return steps


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    tmp = tmp_path_factory.mktemp("ref")
    recipe = tmp / "r.yaml"
    import yaml

    recipe.write_text(
        yaml.safe_dump(
            tiny_recipe(
                model__dropout=0.1,
                train__grad_accum=2,
                train__batch_size=2,
                train__steps=40,
                train__checkpoints={"every_steps": 4, "every_minutes": None, "keep_last": 20},
            )
        )
    )
    res = spotrain("run", str(recipe), "--workdir", str(tmp / "run"))
    assert res.returncode == 0, res.stderr
    return recipe, tmp / "run"


@pytest.mark.slow(80)
def test_sigkill_anywhere_resumes_bit_identical(reference, tmp_path):
    recipe, ref_dir = reference
    work = tmp_path / "run"
    # Killed at each phase of the checkpoint protocol, then at a random moment of training.
    for phase, step in [
        ("model-written", 8),
        ("files-written", 12),
        ("renamed", 16),
        ("manifest-written", 20),
    ]:
        res = spotrain(
            "run", str(recipe), "--workdir", str(work), env={"SPOTRAIN_FAILPOINT": f"{phase}@{step}"}
        )
        assert res.returncode == -signal.SIGKILL, (
            phase,
            res.returncode,
            res.stdout[-2000:],
            res.stderr[-2000:],
        )
        broken = work / "checkpoints" / f"step-{step:08d}"
        assert not (broken / "MANIFEST.json").exists(), f"{phase}: a manifest exists for an interrupted save"
    proc = spotrain_popen("run", str(recipe), "--workdir", str(work))
    wait_for_step(work, 26, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = spotrain("run", str(recipe), "--workdir", str(work))
    assert res.returncode == 0, res.stderr
    assert "resumed from checkpoint at step" in res.stdout

    ref_model, ref_opt = final_state(ref_dir, 40)
    model, opt = final_state(work, 40)
    assert_same_tensors(ref_model, model, "model")
    assert_same_tensors(ref_opt, opt, "optimizer")
    assert losses(work) == losses(ref_dir)
    assert len(losses(ref_dir)) == 40
    events = [json.loads(l)["event"] for l in (work / "events.jsonl").read_text().splitlines()]
    assert events.count("checkpoint_restored") >= 4


def test_sigterm_checkpoints_then_exits_and_resumes(reference, tmp_path):
    recipe, ref_dir = reference
    work = tmp_path / "run"
    proc = spotrain_popen("run", str(recipe), "--workdir", str(work))
    wait_for_step(work, 6, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    evs = [json.loads(l) for l in (work / "events.jsonl").read_text().splitlines()]
    interrupted = [e for e in evs if e["event"] == "interrupted"]
    assert interrupted and interrupted[0]["signal"] == signal.SIGTERM
    saved = [e for e in evs if e["event"] == "checkpoint_saved" and e["reason"] == "signal"]
    assert saved and saved[-1]["step"] == interrupted[0]["step"]
    assert (work / "checkpoints" / f"step-{saved[-1]['step']:08d}" / "MANIFEST.json").exists()
    res = spotrain("run", str(recipe), "--workdir", str(work))
    assert res.returncode == 0, res.stderr
    assert_same_tensors(final_state(ref_dir, 40)[0], final_state(work, 40)[0], "model")
    assert losses(work) == losses(ref_dir)


def test_rerun_after_completion_is_a_noop(reference):
    recipe, ref_dir = reference
    before = (ref_dir / "events.jsonl").read_text().count('"event":"step"')
    res = spotrain("run", str(recipe), "--workdir", str(ref_dir))
    assert res.returncode == 0 and "already complete" in res.stdout
    assert (ref_dir / "events.jsonl").read_text().count('"event":"step"') == before


def test_extending_steps_continues_from_last_checkpoint(reference, tmp_path):
    import shutil

    recipe, ref_dir = reference
    work = tmp_path / "ext"
    shutil.copytree(ref_dir, work)
    res = spotrain("run", str(recipe), "train.steps=44", "--workdir", str(work))
    assert res.returncode == 0, res.stderr
    assert "resumed from checkpoint at step 40" in res.stdout
    assert max(losses(work)) == 44


def test_checkpoint_of_another_model_is_refused(reference, tmp_path):
    import shutil

    recipe, ref_dir = reference
    work = tmp_path / "other"
    shutil.copytree(ref_dir, work)
    (work / "result.json").unlink()
    res = spotrain("run", str(recipe), "model.layers=3", "--workdir", str(work))
    assert res.returncode == 2
    assert "different model/data" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_one_run_per_run_folder_and_relative_checkpoint_dir(reference, tmp_path):
    recipe, _ = reference
    work = tmp_path / "run"
    long = ("train.steps=100000", "storage.checkpoints=ck")
    proc = spotrain_popen("run", str(recipe), *long, "--workdir", str(work))
    wait_for_step(work, 2, proc)
    second = spotrain("run", str(recipe), *long, "--workdir", str(work))
    assert second.returncode == 2
    assert f"{work} is in use by a running spotrain run (pid {proc.pid})" in second.stderr
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert list((work / "ck").glob("step-*")) and not (work / "checkpoints").exists()
