"""Pack token ids into fixed-length blocks stored as memory-mapped ``.npy`` arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def pack_stream(
    docs: list[list[int]], eos: int, pad: int, seq_len: int, dtype: np.dtype, keep_partial: bool
) -> np.ndarray:
    """Concatenate documents (each followed by ``eos``) and cut into ``seq_len`` blocks.
    A trailing partial block is padded with ``pad`` when ``keep_partial`` (val/test), else dropped."""
    total = sum(len(d) + 1 for d in docs)
    stream = np.empty(total, dtype=dtype)
    i = 0
    for d in docs:
        stream[i : i + len(d)] = d
        stream[i + len(d)] = eos
        i += len(d) + 1
    n_full = total // seq_len
    rest = total - n_full * seq_len
    blocks = stream[: n_full * seq_len].reshape(n_full, seq_len)
    if keep_partial and rest:
        last = np.full((1, seq_len), pad, dtype=dtype)
        last[0, :rest] = stream[n_full * seq_len :]
        blocks = np.concatenate([blocks, last])
    return blocks


def pack_pairs(
    pairs: list[tuple[list[int], list[int]]], eos: int, pad: int, seq_len: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, int]:
    """One prompt/response example per block: ``prompt + response + eos``, right-padded.
    The loss mask is 1 on response tokens and the final eos. Returns (tokens, mask, n_truncated)."""
    tokens = np.full((len(pairs), seq_len), pad, dtype=dtype)
    mask = np.zeros((len(pairs), seq_len), dtype=np.uint8)
    truncated = 0
    for row, (p, r) in enumerate(pairs):
        ids = p + r + [eos]
        if len(ids) > seq_len:
            truncated += 1
            ids = ids[:seq_len]
        tokens[row, : len(ids)] = ids
        mask[row, min(len(p), seq_len) : len(ids)] = 1
    return tokens, mask, truncated


def save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        import os

        os.fsync(fh.fileno())


def load(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)
