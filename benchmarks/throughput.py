"""Training throughput: `spotrain run` vs a plain Hugging Face `Trainer`.

Same model (tiny-gpt: GPT-2, 4 layers, hidden 128, vocab 2048), same packed data (the blocks
spotrain prepared), same batch size, fp32, same torch thread count, same run. Tokens/s are
measured over the steady-state steps (after a warm-up), from each side's own step timestamps.

    python benchmarks/throughput.py [--steps 200] [--warmup 20] [--threads 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, events, spotrain, table

RECIPE = ROOT / "recipes" / "tiny-gpt.yaml"


def run_spotrain(tmp: Path, steps: int, warmup: int, threads: int) -> float:
    work = tmp / f"spotrain-{time.time_ns()}"
    res = spotrain(
        "run",
        str(RECIPE),
        f"train.steps={steps}",
        "train.batch_size=16",
        "train.log_every=1",
        f"train.threads={threads}",
        "train.eval_every=null",
        "train.checkpoints.every_steps=null",
        "train.checkpoints.every_minutes=null",
        "eval.splits=[]",
        "eval.prompts=[]",
        "eval.error_analysis=0",
        "--workdir",
        str(work),
    )
    if res.returncode:
        raise SystemExit(res.stderr)
    st = {e["step"]: e for e in events(work) if e["event"] == "step"}
    return (st[steps]["tokens"] - st[warmup]["tokens"]) / (st[steps]["time"] - st[warmup]["time"])


def hf_trainer_worker(data_dir: str, steps: int, warmup: int, threads: int) -> float:
    """Runs in its own process: a plain transformers Trainer on the same blocks."""
    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
    blocks = np.load(Path(data_dir) / "train.tokens.npy", mmap_mode="r")

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return blocks.shape[0]

        def __getitem__(self, i):
            x = torch.from_numpy(np.asarray(blocks[i]).astype(np.int64))
            return {"input_ids": x, "labels": x}

    ids = manifest["special_ids"]
    cfg = GPT2Config(
        vocab_size=manifest["vocab_size"],
        n_positions=128,
        n_embd=128,
        n_layer=4,
        n_head=4,
        n_inner=512,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=ids["eos"],
        eos_token_id=ids["eos"],
    )
    model = GPT2LMHeadModel(cfg)
    stamps: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps[state.global_step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=16,
            max_steps=steps,
            learning_rate=2e-3,
            warmup_steps=30,
            lr_scheduler_type="cosine",
            weight_decay=0.1,
            max_grad_norm=1.0,
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            seed=0,
        )
        Trainer(model=model, args=args, train_dataset=Blocks(), callbacks=[Clock()]).train()
    tokens = (steps - warmup) * 16 * 128
    return tokens / (stamps[steps] - stamps[warmup])


def run_hf(data_dir: Path, steps: int, warmup: int, threads: int) -> float:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import throughput as t; "
        f"print(t.hf_trainer_worker({str(data_dir)!r}, {steps}, {warmup}, {threads}))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours, theirs = [], []
        for r in range(a.rounds):
            ours.append(run_spotrain(tmp, a.steps, a.warmup, a.threads))
            data_dir = next(
                e for e in events(sorted(tmp.glob("spotrain-*"))[-1]) if e["event"] == "data_stats"
            )["fingerprint"]
            from spotrain.recipes.runtime.data.prepare import default_cache_root

            theirs.append(run_hf(default_cache_root() / data_dir, a.steps, a.warmup, a.threads))
        rows = [
            [f"round {i + 1}", f"{o:,.0f}", f"{t:,.0f}", f"{o / t:.2f}"]
            for i, (o, t) in enumerate(zip(ours, theirs))
        ]
        mo, mt = statistics.median(ours), statistics.median(theirs)
        rows.append(["median", f"{mo:,.0f}", f"{mt:,.0f}", f"{mo / mt:.2f}"])
    print(f"tiny-gpt, batch 16 x 128 tokens, fp32, {a.threads} threads, steps {a.warmup}..{a.steps}")
    print(table(rows, ["", "spotrain run tok/s", "HF Trainer tok/s", "ratio (goal >= 1.0)"]))


if __name__ == "__main__":
    main()
