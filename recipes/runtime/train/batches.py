"""Which blocks each process sees at each step, and how they become model inputs.

The order is a pure function of (seed, step, micro-batch, rank): epoch ``e`` visits the
blocks in ``permutation(seed, e)``, consumed ``batch_size × grad_accum × world`` per step.
So the data position of a checkpoint is its step, and a resumed run sees exactly the
batches an uninterrupted run would have seen. MLM masks use a generator seeded the same way.
"""

from __future__ import annotations

import numpy as np
import torch

_MIX = 0x9E3779B97F4A7C15


def mix(*parts: int) -> int:
    h = 0
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFFFFFF)) * _MIX + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    return h >> 1


class BatchPlan:
    def __init__(self, n_blocks: int, batch_size: int, grad_accum: int, world: int, rank: int, seed: int):
        if n_blocks <= 0:
            raise ValueError("no blocks to train on")
        self.n, self.b, self.a, self.w, self.r, self.seed = (
            n_blocks,
            batch_size,
            grad_accum,
            world,
            rank,
            seed,
        )
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int, micro: int) -> np.ndarray:
        g0 = ((step * self.a + micro) * self.w + self.r) * self.b
        out = np.empty(self.b, dtype=np.int64)
        for j in range(self.b):
            epoch, off = divmod(g0 + j, self.n)
            out[j] = self._perm(epoch)[off]
        return out

    def epoch(self, step: int) -> float:
        return step * self.a * self.w * self.b / self.n


def make_batch(
    tokens: np.ndarray,
    mask: np.ndarray | None,
    idx: np.ndarray,
    objective: str,
    ids: dict,
    vocab: int,
    mlm_probability: float,
    generator: torch.Generator | None,
) -> dict:
    order = np.sort(idx)  # memmap-friendly read, then restore the plan's order
    inv = np.argsort(np.argsort(idx))
    x = torch.from_numpy(np.asarray(tokens[order]).astype(np.int64)[inv])
    pad = ids["pad"]
    real = x != pad if pad is not None else torch.ones_like(x, dtype=torch.bool)
    attn = None if bool(real.all()) else real.long()
    if objective == "mlm":
        labels = x.clone()
        chosen = (torch.rand(x.shape, generator=generator) < mlm_probability) & real
        labels[~chosen] = -100
        r = torch.rand(x.shape, generator=generator)
        rand_tok = torch.randint(0, vocab, x.shape, generator=generator)
        x = x.clone()
        x[chosen & (r < 0.8)] = ids["mask"]
        swap = chosen & (r >= 0.8) & (r < 0.9)
        x[swap] = rand_tok[swap]
        return {
            "input_ids": x,
            "attention_mask": attn if attn is not None else torch.ones_like(x),
            "labels": labels,
        }
    labels = x.clone()
    if mask is not None:
        m = torch.from_numpy(np.asarray(mask[order])[inv].astype(bool))
        labels[~m] = -100
    labels[~real] = -100
    batch = {"input_ids": x, "labels": labels}
    if attn is not None:
        batch["attention_mask"] = attn
    return batch


def mask_generator(seed: int, *where: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(mix(seed, *where))
    return g
