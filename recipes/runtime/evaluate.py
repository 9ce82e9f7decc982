"""Evaluation: perplexity and token accuracy per split, BLEU/chrF on prompts, error analysis."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .train.batches import make_batch, mask_generator

_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


@torch.no_grad()
def score_split(
    model,
    data,
    split: str,
    objective: str,
    batch_size: int,
    max_batches: int | None,
    seed: int,
    device,
    autocast=contextlib.nullcontext,
    keep_worst: int = 0,
) -> tuple[dict, list[tuple[float, int]]]:
    """Token-weighted loss, perplexity and accuracy over ``split``; plus the ``keep_worst``
    (mean loss, block index) pairs with the highest loss."""
    tokens, mask = data.tokens(split), data.loss_mask(split)
    n = tokens.shape[0]
    if n == 0:
        return {"split": split, "blocks": 0, "tokens": 0}, []
    was_training = model.training
    model.eval()
    total_loss, total_tok, correct = 0.0, 0, 0
    per_block: list[tuple[float, int]] = []
    batches = range(0, n, batch_size)
    if max_batches:
        batches = list(batches)[:max_batches]
    vocab = model.get_input_embeddings().num_embeddings
    for bi, start in enumerate(batches):
        idx = np.arange(start, min(n, start + batch_size))
        gen = mask_generator(seed, 7919, _SPLIT_ID[split], bi) if objective == "mlm" else None
        batch = make_batch(tokens, mask, idx, objective, data.ids, vocab, 0.15, gen)
        labels = batch.pop("labels").to(device)
        with autocast():
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
        if objective != "mlm":
            logits, labels = logits[:, :-1], labels[:, 1:]
        valid = labels != -100
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), labels.reshape(-1).clamp_min(0), reduction="none"
        ).view(labels.shape)
        loss = loss * valid
        total_loss += float(loss.sum())
        total_tok += int(valid.sum())
        correct += int(((logits.argmax(-1) == labels) & valid).sum())
        if keep_worst:
            row_tok = valid.sum(1).clamp_min(1)
            for j, v in enumerate((loss.sum(1) / row_tok).tolist()):
                per_block.append((v, int(idx[j])))
    model.train(was_training)
    mean = total_loss / max(1, total_tok)
    worst = sorted(per_block, reverse=True)[:keep_worst]
    return {
        "split": split,
        "blocks": int(min(n, len(batches) * batch_size)),
        "tokens": total_tok,
        "loss": mean,
        "perplexity": math.exp(min(mean, 50)),
        "accuracy": correct / max(1, total_tok),
    }, worst


@torch.no_grad()
def generate_and_score(model, tokenizer, prompts: list[tuple[str, str]], max_new_tokens: int, device) -> dict:
    """Greedy continuation of each prompt, scored against its reference with sacrebleu."""
    import sacrebleu

    model.eval()
    cfg = model.config
    context = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 1 << 30
    hyps, refs, samples = [], [], []
    for prompt, reference in prompts:
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        keep = min(ids.shape[1], context - min(max_new_tokens, context // 2))
        ids = ids[:, ids.shape[1] - keep :]  # the end of a long prompt; prompt + generation fit the context
        new = min(max_new_tokens, context - keep)
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        text = text[: max(len(reference) * 2, 1)]
        hyps.append(text)
        refs.append(reference)
        samples.append({"prompt": prompt, "reference": reference, "generation": text})
    bleu = sacrebleu.corpus_bleu(hyps, [refs])
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    return {"bleu": bleu.score, "chrf": chrf.score, "prompts": len(prompts), "samples": samples}


def load_prompts(path: Path) -> list[tuple[str, str]]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                obj = json.loads(line)
                out.append((obj["prompt"], obj["reference"]))
    return out


def write_error_analysis(workdir: Path, data, worst: list[tuple[float, int]], split: str = "test") -> Path:
    """The highest-loss examples as JSONL and a readable Markdown report."""
    tokens = data.tokens(split)
    pad = data.ids["pad"]
    rows = []
    for loss, idx in worst:
        ids = [int(t) for t in tokens[idx] if int(t) != pad]
        rows.append({"block": idx, "loss": round(loss, 4), "text": data.tokenizer.decode(ids)})
    (workdir / "error_analysis.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = [f"# Highest-loss {split} examples", ""]
    for r in rows:
        snippet = r["text"][:600].replace("```", "` ` `")
        md += [
            f"## block {r['block']} — loss {r['loss']:.3f} (perplexity {math.exp(min(r['loss'], 50)):.1f})",
            "",
            "```",
            snippet,
            "```",
            "",
        ]
    path = workdir / "error_analysis.md"
    path.write_text("\n".join(md))
    return path
