"""End-to-end runs of each objective and family, the events contract, and data parallel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import spotrain, tiny_recipe

EVENT_TYPES = {"run_start", "data_stats", "model", "step", "eval", "checkpoint_saved", "run_end"}


def events(workdir: Path) -> list[dict]:
    return [json.loads(l) for l in (workdir / "events.jsonl").read_text().splitlines()]


def run(tmp_path: Path, recipe: dict, *extra: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    work = tmp_path / "run"
    res = spotrain("run", str(path), "--workdir", str(work), *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    return work, res


def assert_learns(work: Path):
    steps = [e for e in events(work) if e["event"] == "step"]
    first, last = sum(e["loss"] for e in steps[:3]) / 3, sum(e["loss"] for e in steps[-3:]) / 3
    assert last < first - 0.3, (first, last)


def test_clm_gpt2_full_run_outputs_and_events(tmp_path):
    recipe = tiny_recipe(
        train__steps=40,
        train__eval_every=20,
        eval__prompts=[
            {"prompt": "import json\n", "reference": "import sys\n"},
            {"prompt": "def ", "reference": "main():\n"},
        ],
    )
    work, res = run(tmp_path, recipe)
    assert "parameters" in res.stdout and "MFLOP per training token" in res.stdout
    evs = events(work)
    assert EVENT_TYPES <= {e["event"] for e in evs}
    step = next(e for e in evs if e["event"] == "step")
    assert {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "time"} <= step.keys()
    stats = next(e for e in evs if e["event"] == "data_stats")
    assert stats["documents_in"] >= stats["documents_out"] > 0 and stats["train_tokens"] > 0
    assert any(e["event"] == "eval" and e["step"] == 20 and e["split"] == "val" for e in evs)
    assert_learns(work)
    result = json.loads((work / "eval.json").read_text())
    for split in ("val", "test"):
        assert result[split]["tokens"] > 0 and 0 <= result[split]["accuracy"] <= 1
        assert result[split]["perplexity"] > 1
    gen = result["generation"]
    assert gen["prompts"] == 2 and 0 <= gen["bleu"] <= 100 and 0 <= gen["chrf"] <= 100
    worst = [json.loads(l) for l in (work / "error_analysis.jsonl").read_text().splitlines()]
    assert len(worst) == 3 and worst[0]["loss"] >= worst[-1]["loss"]
    assert "Highest-loss test examples" in (work / "error_analysis.md").read_text()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(work / "model")
    tok = AutoTokenizer.from_pretrained(work / "model")
    assert model.config.n_layer == 2 and len(tok) == 512


def test_mlm_bert_run(tmp_path):
    recipe = tiny_recipe(model__family="bert", train__objective="mlm", train__steps=40, train__lr=2e-3)
    work, _ = run(tmp_path, recipe)
    assert_learns(work)
    result = json.loads((work / "eval.json").read_text())
    assert result["test"]["tokens"] > 0  # masked positions scored
    from transformers import AutoModelForMaskedLM

    assert AutoModelForMaskedLM.from_pretrained(work / "model").config.model_type == "bert"


def test_sft_llama_run_learns_the_response_only(tmp_path):
    rows = [{"prompt": f"Q: double {i}?\nA:", "response": f" {2 * i}"} for i in range(300)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tiny_recipe(
        data__sources=[{"type": "files", "paths": [str(tmp_path / "pairs.jsonl")], "format": "jsonl"}],
        data__clean={"near_dedup": {"enabled": False}},
        model__family="llama",
        model__kv_heads=1,
        train__objective="sft",
        train__steps=40,
    )
    work, _ = run(tmp_path, recipe)
    assert_learns(work)
    result = json.loads((work / "eval.json").read_text())
    # only response tokens (+ eos) are scored: a handful per example
    assert result["test"]["tokens"] <= 8 * result["test"]["blocks"]


@pytest.mark.slow
def test_two_process_data_parallel_on_cpu(tmp_path):
    recipe = tiny_recipe(
        train__steps=12, train__checkpoints={"every_steps": 6, "every_minutes": None, "keep_last": 3}
    )
    work, res = run(tmp_path, recipe, "--nproc", "2")
    start = next(e for e in events(work) if e["event"] == "run_start")
    assert start["world_size"] == 2
    ck = work / "checkpoints" / "step-00000012"
    assert (ck / "rng-0.pt").exists() and (ck / "rng-1.pt").exists()
    manifest = json.loads((ck / "MANIFEST.json").read_text())
    assert manifest["world_size"] == 2 and set(manifest["files"]) >= {"rng-0.pt", "rng-1.pt", "model.pt"}
    # each step consumed batch_size × 2 processes sequences
    steps = [e for e in events(work) if e["event"] == "step"]
    assert steps[-1]["tokens"] == 12 * 4 * 2 * 32
    res = spotrain("run", str(tmp_path / "r.yaml"), "train.steps=14", "--workdir", str(work), "--nproc", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resumed from checkpoint at step 12" in res.stdout


def test_fine_tune_from_a_local_model_folder(tmp_path):
    base, _ = run(tmp_path / "base", tiny_recipe(train__steps=10))
    model_dir = base / "model"
    ft = tiny_recipe(
        model={"from": str(model_dir)},
        data__tokenizer={"type": "pretrained", "path": str(model_dir)},
        train__steps=6,
        train__lr=1e-3,
    )
    work, res = run(tmp_path / "ft", ft)
    assert f"model {model_dir}" in res.stdout
    first = next(e for e in events(work) if e["event"] == "step")
    base_last = [e for e in events(base) if e["event"] == "step"][-1]
    # starts from the trained weights, not from scratch (~ln(512) = 6.2)
    assert first["loss"] < 6.0 and abs(first["loss"] - base_last["loss"]) < 0.6
