"""The checkpoint commit protocol on an object store.

Upload every file of ``step-N/``, then its ``MANIFEST.json`` (sizes, SHA-256) last: a remote
checkpoint exists only when its manifest exists and everything downloaded verifies against it.
A corrupt or partial one is skipped with a warning, never loaded. Retention keeps the newest K
plus the best by validation loss, deleting older ones only after a newer one committed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

from spotrain.recipes.runtime.train import checkpoint as local

from .base import ObjectStore

_STEP = re.compile(r"^step-(\d{8,})$")


def remote_steps(store: ObjectStore) -> list[int]:
    return sorted((int(m.group(1)) for d in store.list_dirs() if (m := _STEP.match(d))), reverse=True)


def upload(store: ObjectStore, local_dir: Path, step: int) -> int:
    """Upload a complete local checkpoint; the manifest goes last. Returns bytes sent."""
    name = f"step-{step:08d}"
    manifest = (local_dir / local.MANIFEST).read_bytes()
    total = 0
    for i, f in enumerate(sorted(p for p in local_dir.iterdir() if p.is_file() and p.name != local.MANIFEST)):
        store.put_file(f"{name}/{f.name}", f)
        total += f.stat().st_size
        if i == 0:
            local.failpoint("upload-partial", step)  # tests: killed with some files uploaded, no manifest
    store.put_bytes(f"{name}/{local.MANIFEST}", manifest)
    return total + len(manifest)


def remote_manifest(store: ObjectStore, step: int) -> dict | None:
    raw = store.get_bytes(f"step-{step:08d}/{local.MANIFEST}")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def fetch_latest(
    store: ObjectStore,
    local_root: Path,
    newer_than: int | None = None,
    warn: Callable[[str], None] = lambda s: None,
) -> int | None:
    """Download the newest remote checkpoint that verifies (and is newer than ``newer_than``)
    into ``local_root``. Returns its step, or None."""
    local_root = Path(local_root)
    for step in remote_steps(store):
        if newer_than is not None and step <= newer_than:
            return None
        name = f"step-{step:08d}"
        manifest = remote_manifest(store, step)
        if manifest is None:
            warn(f"skipping {store.uri}/{name}: no manifest (interrupted while uploading)")
            continue
        tmp = local_root / f".download-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for fname in manifest["files"]:
                store.get_file(f"{name}/{fname}", tmp / fname)
        except FileNotFoundError:
            warn(f"skipping {store.uri}/{name}: a file listed in its manifest is missing")
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        (tmp / local.MANIFEST).write_text(json.dumps(manifest))
        ok, why = local.verify(tmp)
        if ok is None:
            warn(f"skipping {store.uri}/{name}: {why}")
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        final = local.step_dir(local_root, step)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return step
    return None


def best_step(manifests: dict[int, dict]) -> int | None:
    scored = [(m["val_loss"], s) for s, m in manifests.items() if m.get("val_loss") is not None]
    return min(scored)[1] if scored else None


def prune_remote(store: ObjectStore, keep_last: int) -> list[int]:
    """Keep the newest ``keep_last`` complete checkpoints and the best by validation loss."""
    steps = remote_steps(store)
    manifests = {s: m for s in steps if (m := remote_manifest(store, s)) is not None}
    complete = [s for s in steps if s in manifests]
    if not complete:
        return []
    keep = set(complete[:keep_last])
    best = best_step(manifests)
    if best is not None:
        keep.add(best)
    removed = []
    for s in steps:
        if s in keep or s > complete[0]:
            continue  # keep anything newer than the newest complete one: it may be uploading now
        store.delete_prefix(f"step-{s:08d}")
        removed.append(s)
    return removed
