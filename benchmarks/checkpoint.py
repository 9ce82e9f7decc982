"""Checkpoint save time and size, and resume time: spotrain's atomic, verified protocol vs a
plain `torch.save`/`torch.load` of the same state (the baseline), for tiny-gpt and GPT-2 124M.

The state is real: model + AdamW after one optimizer step (so both moments exist) +
scheduler + RNG. spotrain's save fsyncs every file and hashes it (SHA-256) into the manifest;
its resume verifies the manifest (sizes and hashes) before loading.

    python benchmarks/checkpoint.py [--models tiny-gpt,gpt2-124m]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _common import table

from spotrain.recipes.runtime.train import checkpoint, rng
from spotrain.recipes.schema.train import Train
from spotrain.recipes.runtime.train import optim

SHAPES = {
    "tiny-gpt": dict(n_layer=4, n_head=4, n_embd=128, vocab_size=2048, n_positions=128),
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024),
}


def state(name: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**SHAPES[name]))
    opt, sched = optim.build(model, Train(steps=10, warmup_steps=1))
    x = torch.randint(0, SHAPES[name]["vocab_size"], (1, 32))
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    sched.step()
    return model, opt, sched


def spotrain_save(root: Path, step: int, model, opt, sched) -> Path:
    tmp = checkpoint.begin(root, step)
    known = {
        "rng-0.pt": checkpoint.save_torch(rng.capture(), tmp / "rng-0.pt"),
        "model.pt": checkpoint.save_torch(model.state_dict(), tmp / "model.pt"),
        "optimizer.pt": checkpoint.save_torch(opt.state_dict(), tmp / "optimizer.pt"),
        "scheduler.pt": checkpoint.save_torch(sched.state_dict(), tmp / "scheduler.pt"),
    }
    return checkpoint.commit(root, tmp, step, {"fingerprint": "bench"}, known)


def spotrain_resume(root: Path, model, opt, sched) -> int:
    found = checkpoint.latest(root)
    load = lambda n: torch.load(found.path / n, map_location="cpu", weights_only=False)  # noqa: E731
    model.load_state_dict(load("model.pt"))
    opt.load_state_dict(load("optimizer.pt"))
    sched.load_state_dict(load("scheduler.pt"))
    rng.restore(load("rng-0.pt"))
    return found.step


def plain_save(path: Path, model, opt, sched) -> None:
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng.capture(),
        },
        path,
    )


def plain_save_fsync(path: Path, model, opt, sched) -> None:
    with open(path, "wb") as fh:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng.capture(),
            },
            fh,
        )
        fh.flush()
        os.fsync(fh.fileno())


def plain_resume(path: Path, model, opt, sched) -> None:
    s = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(s["model"])
    opt.load_state_dict(s["optimizer"])
    sched.load_state_dict(s["scheduler"])
    rng.restore(s["rng"])


def timed(fn, *a) -> float:
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-gpt,gpt2-124m")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for name in a.models.split(","):
        model, opt, sched = state(name)
        params = sum(p.numel() for p in model.parameters())
        with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
            tmp = Path(tmp)
            s_save, s_res, p_save, p_res, f_save = [], [], [], [], []
            for i in range(a.repeat):
                root = tmp / f"ck{i}"
                s_save.append(timed(spotrain_save, root, 1, model, opt, sched))
                s_res.append(timed(spotrain_resume, root, model, opt, sched))
                size = checkpoint.dir_bytes(checkpoint.step_dir(root, 1))
                p = tmp / f"plain{i}.pt"
                p_save.append(timed(plain_save, p, model, opt, sched))
                p_res.append(timed(plain_resume, p, model, opt, sched))
                psize = p.stat().st_size
                f_save.append(timed(plain_save_fsync, p, model, opt, sched))
                shutil.rmtree(root)
                p.unlink()
        best = min
        rows.append(
            [
                name,
                f"{params / 1e6:.1f}M",
                f"{size / 1e6:.1f} MB",
                f"{best(s_save):.3f}",
                f"{best(f_save):.3f}",
                f"{best(p_save):.3f}",
                f"{best(s_res):.3f}",
                f"{best(p_res):.3f}",
                f"{psize / 1e6:.1f} MB",
            ]
        )
    print(f"best of {a.repeat}; seconds; checkpoint on {Path.home()}'s disk")
    print(
        table(
            rows,
            [
                "model",
                "params",
                "spotrain size",
                "spotrain save",
                "torch.save+fsync",
                "torch.save",
                "spotrain resume (verified)",
                "torch.load",
                "torch.save size",
            ],
        )
    )


if __name__ == "__main__":
    main()
