"""AdamW with decoupled weight decay on matrices only, and warm-up + decay schedules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spotrain.recipes.schema.train import Train


@dataclass(frozen=True)
class Schedule:
    """LR multiplier at ``step`` (0-based): linear warm-up, then cosine/linear/constant decay
    to ``min_ratio`` at ``total``. A plain object so the scheduler state pickles."""

    warmup: int
    total: int
    kind: str
    min_ratio: float

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        if self.kind == "cosine":
            decay = 0.5 * (1 + math.cos(math.pi * progress))
        else:
            decay = 1 - progress
        return self.min_ratio + (1 - self.min_ratio) * decay


def build(
    model: torch.nn.Module, cfg: Train
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA) is much faster than the per-tensor loop torch picks on CPU.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in decay + no_decay)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused or None)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, Schedule(cfg.warmup_steps, cfg.steps, cfg.schedule, cfg.min_lr_ratio)
    )
    return opt, sched
