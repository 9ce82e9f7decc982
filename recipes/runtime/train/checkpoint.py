"""Atomic, verified training checkpoints in a local folder.

Layout: ``<root>/step-00000200/`` holding ``model.pt``, ``optimizer.pt``, ``scheduler.pt``,
``rng-<rank>.pt``, ``state.json`` and, written last, ``MANIFEST.json`` (every file's size
and SHA-256). Protocol: write into ``<root>/.tmp-step-…``, fsync every file and the folder,
rename into place, fsync the parent, then write the manifest (temp name, fsync, rename).
A checkpoint exists only when its manifest exists and verifies; anything else — a kill in
the middle of any of these steps — is skipped on resume and cleaned up later.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MANIFEST = "MANIFEST.json"
_NAME = re.compile(r"^step-(\d{8,})$")


def failpoint(phase: str, step: int) -> None:
    """Fault injection for tests: ``SPOTRAIN_FAILPOINT=phase@step`` SIGKILLs this process
    at that point of the save protocol, as a spot reclaim past its grace period would."""
    if os.environ.get("SPOTRAIN_FAILPOINT") in (f"{phase}@{step}", f"{phase}@*"):
        os.kill(os.getpid(), signal.SIGKILL)


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_file_atomic(path: Path, data: bytes, before_rename=lambda: None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    before_rename()
    os.replace(tmp, path)
    fsync_path(path.parent)


def begin(root: Path, step: int) -> Path:
    """Create (fresh) the temporary folder for checkpoint ``step``; rank 0 only."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes through it (no second read of the file)."""

    def __init__(self, fh):
        self.fh, self.sha, self.bytes = fh, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.sha.update(b)
        self.bytes += len(b)
        return self.fh.write(b)


def save_torch(obj, path: Path) -> dict:
    """torch.save + fsync; returns {"bytes", "sha256"} computed while writing."""
    import torch

    with open(path, "wb") as fh:
        w = _HashingWriter(fh)
        torch.save(obj, w)
        fh.flush()
        os.fsync(fh.fileno())
    return {"bytes": w.bytes, "sha256": w.sha.hexdigest()}


def commit(root: Path, tmp: Path, step: int, meta: dict, known: dict[str, dict] | None = None) -> Path:
    """Rename the filled temporary folder into place and write its manifest last; rank 0 only.
    ``known`` holds digests computed while writing (by :func:`save_torch`); other files are hashed here."""
    final = step_dir(root, step)
    files = {}
    known = known or {}
    for f in sorted(p for p in tmp.iterdir() if p.is_file()):
        size = f.stat().st_size
        hit = known.get(f.name)
        files[f.name] = hit if hit and hit["bytes"] == size else {"bytes": size, "sha256": sha256_file(f)}
    fsync_path(tmp)
    failpoint("files-written", step)
    if final.exists():  # an incomplete one from an earlier life at the same step
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_path(final.parent)
    failpoint("renamed", step)
    manifest = {"step": step, "files": files, "created": time.time(), **meta}
    write_file_atomic(
        final / MANIFEST, json.dumps(manifest, indent=1).encode(), lambda: failpoint("manifest-written", step)
    )
    return final


@dataclass(frozen=True)
class Found:
    step: int
    path: Path
    manifest: dict


def verify(path: Path, deep: bool = True) -> tuple[dict | None, str]:
    """Return (manifest, "") when the checkpoint is complete and intact, else (None, why)."""
    mf = path / MANIFEST
    if not mf.exists():
        return None, "no manifest (interrupted while saving)"
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return None, f"unreadable manifest ({exc})"
    for name, info in manifest.get("files", {}).items():
        f = path / name
        if not f.exists():
            return None, f"{name} is missing"
        if f.stat().st_size != info["bytes"]:
            return None, f"{name} has {f.stat().st_size} bytes, manifest says {info['bytes']}"
        if deep and sha256_file(f) != info["sha256"]:
            return None, f"{name} fails its SHA-256 check"
    return manifest, ""


def candidates(root: Path) -> list[tuple[int, Path]]:
    root = Path(root)
    if not root.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(out, reverse=True)


def latest(root: Path, warn: Callable[[str], None] = lambda s: None) -> Found | None:
    """The newest complete, verified checkpoint; broken ones are reported through ``warn``."""
    for step, path in candidates(root):
        manifest, why = verify(path)
        if manifest is not None:
            return Found(step, path, manifest)
        warn(f"skipping checkpoint {path.name}: {why}")
    return None


def prune(root: Path, keep_last: int, protect: set[int] = frozenset()) -> list[Path]:
    """Delete complete checkpoints beyond the newest ``keep_last`` (never those in ``protect``),
    incomplete ones older than the newest complete one, and stale temporary folders."""
    removed = []
    complete = [(s, p) for s, p in candidates(root) if (p / MANIFEST).exists()]
    if not complete:
        return removed
    newest = complete[0][0]
    keep = {s for s, _ in complete[:keep_last]} | set(protect)
    for s, p in candidates(root):
        if s in keep:
            continue
        if (p / MANIFEST).exists() or s < newest:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    for p in Path(root).glob(".tmp-step-*"):
        m = re.search(r"(\d+)$", p.name)
        if m and int(m.group(1)) <= newest:
            shutil.rmtree(p, ignore_errors=True)
    return removed


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def best(root: Path) -> int | None:
    """The complete checkpoint with the lowest validation loss recorded in its manifest."""
    scored = []
    for step, path in candidates(root):
        try:
            m = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if m.get("val_loss") is not None:
            scored.append((m["val_loss"], step))
    return min(scored)[1] if scored else None
