"""Cleaning: Unicode normalisation, control characters, length filters, exact and near dedup."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections import Counter
from typing import Iterable, Iterator

import numpy as np
from datasketch import MinHash, MinHashLSH

from spotrain.recipes.schema.data import Clean

from .documents import Doc

# C0/C1 controls except tab and newline, plus DEL; carriage returns are normalised to newlines first.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WORD = re.compile(r"\w+", re.UNICODE)


def normalise_text(text: str, cfg: Clean) -> str:
    if cfg.normalize != "none":
        text = unicodedata.normalize(cfg.normalize, text)
    if cfg.strip_control:
        text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text


def shingles(text: str, k: int) -> list[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) <= k:
        return [" ".join(words).encode()] if words else []
    return [" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)]


_P = np.uint64(0x100000001B3)


def shingle_hashes(text: str, k: int) -> np.ndarray:
    """32-bit hashes of the k-word shingles of ``text`` (the same set as :func:`shingles`,
    hashed as a polynomial over CRC32 word hashes), vectorised with numpy."""
    words = _WORD.findall(text.lower())
    if not words:
        return np.empty(0, dtype=np.uint64)
    wh = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    k = min(k, len(wh))
    n = len(wh) - k + 1
    acc = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            acc = acc * _P + wh[j : j + n]
    return np.unique((acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF))


def _identity(x):
    return x


class NearDuplicateFilter:
    """Streaming MinHash LSH: a document is dropped when its estimated Jaccard similarity
    (word shingles) to an earlier kept document is ≥ ``threshold``.

    LSH bands find candidates (at most at 0.9, since very high thresholds leave too few
    bands); each candidate is then confirmed with the MinHash similarity estimate."""

    def __init__(self, threshold: float, num_perm: int, shingle_words: int):
        self.k = shingle_words
        self.num_perm = num_perm
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=min(threshold, 0.9), num_perm=num_perm)
        self.kept: list[MinHash] = []

    def is_duplicate(self, text: str) -> bool:
        sh = shingle_hashes(text, self.k)
        if not len(sh):
            return False
        m = MinHash(num_perm=self.num_perm, seed=1, hashfunc=_identity)
        m.update_batch(sh)
        for key in self.lsh.query(m):
            if m.jaccard(self.kept[int(key)]) >= self.threshold:
                return True
        self.lsh.insert(str(len(self.kept)), m, check_duplication=False)
        self.kept.append(m)
        return False


def clean(docs: Iterable[Doc], cfg: Clean, stats: Counter) -> Iterator[Doc]:
    """Yield cleaned, filtered documents in input order; counts what was removed in ``stats``."""
    seen: set[bytes] = set()
    near = (
        NearDuplicateFilter(cfg.near_dedup.threshold, cfg.near_dedup.num_perm, cfg.near_dedup.shingle_words)
        if cfg.near_dedup.enabled
        else None
    )
    for doc in docs:
        stats["documents_in"] += 1
        stats["bytes_in"] += len(doc.text.encode("utf-8", "surrogatepass"))
        cleaned = doc.map(lambda t: normalise_text(t, cfg))
        if cleaned.text != doc.text:
            stats["documents_normalised"] += 1
        if len(cleaned.text.strip()) < max(cfg.min_chars, 1):
            stats["removed_too_short"] += 1
            continue
        if cfg.max_chars is not None and len(cleaned.text) > cfg.max_chars:
            stats["removed_too_long"] += 1
            continue
        if cfg.dedup_exact:
            digest = hashlib.blake2b(cleaned.key(), digest_size=16).digest()
            if digest in seen:
                stats["removed_exact_duplicates"] += 1
                continue
            seen.add(digest)
        if near is not None and near.is_duplicate(cleaned.text):
            stats["removed_near_duplicates"] += 1
            continue
        stats["documents_out"] += 1
        yield cleaned


def jaccard(a: str, b: str, k: int) -> float:
    """Exact shingle Jaccard similarity (for tests and diagnostics)."""
    sa, sb = set(shingles(a, k)), set(shingles(b, k))
    return len(sa & sb) / max(1, len(sa | sb))


__all__ = ["clean", "normalise_text", "NearDuplicateFilter", "jaccard"]
