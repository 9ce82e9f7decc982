"""What a recipe costs in compute: parameters, FLOPs, hours on an accelerator, memory per
device, and the expected extra time that spot preemptions add. Pure functions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotrain.recipes.schema import Recipe
from spotrain.recipes.schema.model import Model

DEFAULT_MFU = 0.35
CUDA_OVERHEAD_GB = 1.5
CPU_RUNTIME_GB = 1.0  # Python + torch + transformers resident memory on a CPU-only machine


@dataclass(frozen=True)
class Workload:
    params: int
    non_embedding: int
    vocab: int
    hidden: int
    layers: int
    flops_per_token: float  # training (fwd+bwd)
    tokens_per_process_step: int
    eval_tokens: int  # forward-only tokens over the whole run
    note: str = ""

    def total_flops(self, world: int, steps: int) -> float:
        train = self.flops_per_token * self.tokens_per_process_step * world * steps
        return train + self.flops_per_token / 3 * self.eval_tokens


def param_counts(m: Model, vocab: int) -> tuple[int, int]:
    """(total, non-embedding) parameters of the transformers model the runtime builds."""
    return m.param_counts(vocab)


def tokenizer_vocab(recipe: Recipe, base_dir: Path) -> tuple[int, str]:
    tok = recipe.data.tokenizer
    if tok.type == "bpe":
        return recipe.model.vocab_size or tok.vocab_size, ""
    p = Path(tok.path).expanduser()
    p = p if p.is_absolute() else base_dir / p
    try:
        data = json.loads((p / "tokenizer.json").read_text())
        return max(
            recipe.model.vocab_size or 0, len(data["model"]["vocab"]) + len(data.get("added_tokens", []))
        ), ""
    except (OSError, KeyError, ValueError):
        return recipe.model.vocab_size or 50257, "tokenizer vocabulary unknown here; assumed 50257"


def workload(recipe: Recipe, base_dir: Path) -> Workload:
    m, t, d = recipe.model, recipe.train, recipe.data
    vocab, note = tokenizer_vocab(recipe, base_dir)
    if m.from_:
        total, non_emb, hidden, layers, note2 = _from_checkpoint(m.from_, base_dir, vocab)
        note = "; ".join(x for x in (note, note2) if x)
    else:
        total, non_emb = param_counts(m, vocab)
        hidden, layers = m.hidden, m.layers
    seq = d.seq_len
    fpt = 6 * (non_emb + vocab * hidden) + 12 * layers * seq * hidden
    per_step = t.batch_size * t.grad_accum * seq
    periodic = (t.steps // t.eval_every) * t.eval_batches if t.eval_every else 0
    final = (recipe.eval.max_batches or 200) * len(recipe.eval.splits)
    return Workload(
        total,
        non_emb,
        vocab,
        hidden,
        layers,
        float(fpt),
        per_step,
        (periodic + final) * t.batch_size * seq,
        note,
    )


def _from_checkpoint(src: str, base_dir: Path, vocab: int) -> tuple[int, int, int, int, str]:
    p = Path(src).expanduser()
    p = p if p.is_absolute() else base_dir / p
    try:
        cfg = json.loads((p / "config.json").read_text())
    except (OSError, ValueError):
        return 124_000_000, 85_000_000, 768, 12, f"model.from {src!r} not readable here; assumed a 124M model"
    d = cfg.get("hidden_size") or cfg.get("n_embd")
    L = cfg.get("num_hidden_layers") or cfg.get("n_layer")
    family = {"gpt2": "gpt2", "llama": "llama", "bert": "bert"}.get(cfg.get("model_type"), "llama")
    m = Model(
        family=family,
        layers=L,
        heads=cfg.get("num_attention_heads") or cfg.get("n_head"),
        hidden=d,
        ffn=cfg.get("intermediate_size") or cfg.get("n_inner"),
        kv_heads=cfg.get("num_key_value_heads"),
        context=cfg.get("max_position_embeddings") or cfg.get("n_positions") or 1024,
        tie_embeddings=cfg.get("tie_word_embeddings", True),
    )
    total, non_emb = param_counts(m, max(vocab, cfg.get("vocab_size", vocab)))
    return total, non_emb, d, L, ""


def memory_need_gb(w: Workload, recipe: Recipe) -> float:
    """Per-device memory for data-parallel training with mixed precision: fp32 weights, grads
    and two AdamW moments (16 B/param), bf16 activations without recomputation (34·s·b·d per
    layer, fused attention), fp32 logits and their gradient, and the CUDA context."""
    b, s = recipe.train.batch_size, recipe.data.seq_len
    states = 16 * w.params
    acts = 34 * s * b * w.hidden * w.layers
    logits = 10 * b * s * w.vocab
    return (states + acts + logits) / 1e9 + CUDA_OVERHEAD_GB


@dataclass(frozen=True)
class Hazard:
    """Default spot hazard model until trace-based forecasts plug in: preemptions arrive at
    ``rate_per_hour`` per node; each costs ``restart_hours`` plus, on average, half the work
    between checkpoints."""

    rate_per_hour: float = 0.1
    restart_hours: float = 0.1
    outage_hours: float = 0.25  # mean time until spot can be had again after a preemption


def checkpoint_interval_hours(recipe: Recipe, hours):
    """Hours of work between checkpoints (``hours``: the job's work hours, a float or an array)."""
    ck = recipe.train.checkpoints
    by_steps = ck.every_steps * hours / recipe.train.steps if ck.every_steps else hours
    by_time = ck.every_minutes / 60 if ck.every_minutes else hours
    return np.minimum(np.minimum(by_steps, by_time), hours)  # element-wise: hours may be an array


def spot_hours(hours: float, interval: float, nodes: int, hazard: Hazard) -> float:
    """Expected wall hours on spot: work hours plus expected preemption losses."""
    return hours * (1 + hazard.rate_per_hour * nodes * (hazard.restart_hours + interval / 2))
