"""Cleaning: Unicode normalisation, control characters, length filters, exact and near dedup."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from typing import Iterable, Iterator

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


def _hash32(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little")


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
        sh = shingles(text, self.k)
        if not sh:
            return False
        m = MinHash(num_perm=self.num_perm, seed=1, hashfunc=_hash32)
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
    near = NearDuplicateFilter(cfg.near_dedup.threshold, cfg.near_dedup.num_perm, cfg.near_dedup.shingle_words) if cfg.near_dedup.enabled else None
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
