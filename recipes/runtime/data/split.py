"""Deterministic train/val/test assignment by content hash (same answer on every machine)."""

from __future__ import annotations

import hashlib

from spotrain.recipes.schema.data import Split

from .documents import Doc


def assign(doc: Doc, cfg: Split) -> str:
    h = hashlib.sha256(cfg.salt.encode() + b"\x00" + doc.key()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < cfg.test:
        return "test"
    if u < cfg.test + cfg.val:
        return "val"
    return "train"
