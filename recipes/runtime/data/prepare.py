"""Prepare a recipe's data once: sources → clean → split → augment → tokenizer → packed blocks.

The result lives in ``<cache>/<fingerprint>/`` where the fingerprint covers the sources'
content and the data config, so reruns and recoveries skip preparation. It is built in a
temporary folder and renamed into place, so a kill mid-way never leaves a half cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Callable

import numpy as np

from spotrain.errors import DataError
from spotrain.recipes.loader import LoadedRecipe

from . import augment as augment_mod
from . import pack
from .clean import clean
from .documents import Doc, content_digest, read_documents, source_files
from .split import assign
from .tokenizer import load_pretrained, special_ids, train_bpe

PREP_VERSION = 1
SPLITS = ("train", "val", "test")


def default_cache_root() -> Path:
    from spotrain.paths import data_cache

    return data_cache()


@dataclass
class PreparedData:
    """Packed blocks per split (memory-mapped), the tokenizer and the manifest."""

    dir: Path
    manifest: dict
    cached: bool = False
    _tok: object = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def seq_len(self) -> int:
        return self.manifest["seq_len"]

    @property
    def ids(self) -> dict[str, int | None]:
        return self.manifest["special_ids"]

    def tokens(self, split: str) -> np.ndarray:
        return pack.load(self.dir / f"{split}.tokens.npy")

    def loss_mask(self, split: str) -> np.ndarray | None:
        p = self.dir / f"{split}.mask.npy"
        return pack.load(p) if p.exists() else None

    @property
    def tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(str(self.dir / "tokenizer"))
        return self._tok


def fingerprint(loaded: LoadedRecipe, digests: list[str]) -> str:
    r = loaded.recipe
    cfg = r.data.model_dump(mode="json")
    payload = {
        "version": PREP_VERSION,
        "data": cfg,
        "sft": r.train.objective == "sft",
        "seed": r.seed if r.data.augment else None,
        "sources": digests,
    }
    tok = r.data.tokenizer
    if tok.type == "pretrained":
        local = loaded.resolve(tok.path)
        payload["tokenizer"] = (
            content_digest(sorted(p for p in local.rglob("*") if p.is_file())) if local.is_dir() else tok.path
        )
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def prepare(
    loaded: LoadedRecipe, cache_root: Path | None = None, log: Callable[[str], None] = print
) -> PreparedData:
    r = loaded.recipe
    cache_root = (
        Path(cache_root)
        if cache_root
        else (loaded.resolve(r.storage.data_cache) if r.storage.data_cache else default_cache_root())
    )
    sft = r.train.objective == "sft"
    files = [source_files(i, s, loaded.base_dir) for i, s in enumerate(r.data.sources)]
    fp = fingerprint(loaded, [content_digest(f) for f in files])
    final = cache_root / fp
    if (final / "manifest.json").exists():
        return PreparedData(final, json.loads((final / "manifest.json").read_text()), cached=True)

    t0 = time.perf_counter()
    stats: Counter = Counter()
    docs = chain.from_iterable(
        read_documents(i, s, f, sft) for i, (s, f) in enumerate(zip(r.data.sources, files))
    )
    kept = clean(docs, r.data.clean, stats)
    if r.data.max_documents:
        kept = islice(kept, r.data.max_documents)
    by_split: dict[str, list[Doc]] = {s: [] for s in SPLITS}
    for doc in kept:
        by_split[assign(doc, r.data.split)].append(doc)
    if stats["documents_out"] == 0:
        removed = ", ".join(
            f"{k.removeprefix('removed_')}={v}"
            for k, v in sorted(stats.items())
            if k.startswith("removed_") and v
        )
        raise DataError(
            f"no documents left after cleaning ({stats['documents_in']} in; removed {removed or 'none'}) — "
            "add data or relax data.clean"
        )
    if not by_split["train"]:
        raise DataError(
            f"the train split is empty ({stats['documents_out']} documents all went to val/test) — lower "
            "data.split.val/test or add data"
        )
    if r.data.augment:
        n = len(by_split["train"])
        by_split["train"] = list(augment_mod.augment(by_split["train"], r.data.augment, r.seed))
        stats["augmented_extra_documents"] = len(by_split["train"]) - n

    tmp = cache_root / f".tmp-{fp}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = _tokenize_and_pack(loaded, by_split, tmp, stats, sft)
        manifest.update(fingerprint=fp, seconds=round(time.perf_counter() - t0, 3))
        manifest["stats"]["mb_per_s"] = round(stats["bytes_in"] / 1e6 / max(manifest["seconds"], 1e-9), 3)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if final.exists() and not (final / "manifest.json").exists():
            shutil.rmtree(final)  # damaged by hand: rebuild
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same preparation first
            if not (final / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PreparedData(final, manifest, cached=False)


def _encode(tok, texts: list[str]) -> list[list[int]]:
    backend = getattr(tok, "backend_tokenizer", None)
    out: list[list[int]] = []
    for i in range(0, len(texts), 512):
        chunk = texts[i : i + 512]
        if backend is not None and hasattr(backend, "encode_batch_fast"):  # same ids, no offset tracking
            out += [e.ids for e in backend.encode_batch_fast(chunk, add_special_tokens=False)]
        else:
            out += tok(chunk, add_special_tokens=False)["input_ids"]
    return out


def _tokenize_and_pack(
    loaded: LoadedRecipe, by_split: dict[str, list[Doc]], tmp: Path, stats: Counter, sft: bool
) -> dict:
    r = loaded.recipe
    tcfg = r.data.tokenizer
    if tcfg.type == "bpe":
        tok = train_bpe(
            (d.text for d in by_split["train"]), tcfg.vocab_size, tcfg.min_frequency, tmp / "tokenizer"
        )
    else:
        tok = load_pretrained(tcfg.path, loaded.base_dir)
        tok.save_pretrained(tmp / "tokenizer")
    ids = special_ids(tok)
    if ids["eos"] is None:
        raise DataError(
            "the tokenizer has no end-of-sequence (or [SEP]) token — use a tokenizer that defines one"
        )
    vocab = len(tok)
    dtype = pack.dtype_for(vocab)
    seq = r.data.seq_len
    splits: dict[str, dict] = {}
    for name in SPLITS:
        docs = by_split[name]
        mask = None
        if sft:
            pairs = list(
                zip(_encode(tok, [d.prompt for d in docs]), _encode(tok, [d.response for d in docs]))
            )
            blocks, mask, truncated = pack.pack_pairs(pairs, ids["eos"], ids["pad"], seq, dtype)
            stats[f"{name}_truncated_examples"] = truncated
            n_tokens = int(sum(len(p) + len(q) + 1 for p, q in pairs))
        else:
            enc = _encode(tok, [d.text for d in docs])
            blocks = pack.pack_stream(enc, ids["eos"], ids["pad"], seq, dtype, keep_partial=name != "train")
            n_tokens = int(sum(len(e) + 1 for e in enc))
        pack.save(tmp / f"{name}.tokens.npy", blocks)
        if mask is not None:
            pack.save(tmp / f"{name}.mask.npy", mask)
        splits[name] = {"documents": len(docs), "tokens": n_tokens, "blocks": int(blocks.shape[0])}
    if splits["train"]["blocks"] == 0:
        raise DataError(
            f"the train split has {splits['train']['tokens']} tokens, less than one block of "
            f"data.seq_len={seq} — add data or lower data.seq_len"
        )
    return {
        "version": PREP_VERSION,
        "seq_len": seq,
        "vocab_size": vocab,
        "dtype": dtype.name,
        "special_ids": ids,
        "splits": splits,
        "stats": dict(stats),
    }
