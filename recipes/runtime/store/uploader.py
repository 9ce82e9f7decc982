"""Background checkpoint uploads: training saves locally (fast) and goes on while the upload
runs. At most one upload is in flight; a newer checkpoint supersedes one still waiting."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from spotrain.recipes.runtime.train import checkpoint as local

from . import checkpoints as remote
from .base import ObjectStore


class Uploader:
    def __init__(
        self,
        store: ObjectStore,
        local_root: Path,
        keep_last: int,
        on_event: Callable[..., None] = lambda *a, **k: None,
    ):
        self.store, self.root, self.keep_last, self.on_event = store, Path(local_root), keep_last, on_event
        self._cv = threading.Condition()
        self._pending: int | None = None
        self.in_flight: int | None = None
        self.submitted: set[int] = set()
        self.done: set[int] = set()
        self.failed: dict[int, str] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="checkpoint-uploader", daemon=True)
        self._thread.start()

    def submit(self, step: int) -> None:
        with self._cv:
            self.submitted.add(step)
            if self._pending is not None:
                self.on_event("upload_superseded", step=self._pending, by=step)
            self._pending = step
            self._cv.notify_all()

    def wait(self, step: int, timeout: float) -> bool:
        """Block until ``step`` is committed remotely (True) or failed / timed out (False)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while step not in self.done and step not in self.failed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return step in self.done

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._pending is None:
                    return
                step, self._pending = self._pending, None
                self.in_flight = step
            t0 = time.perf_counter()
            try:
                n = remote.upload(self.store, local.step_dir(self.root, step), step)
                removed = remote.prune_remote(self.store, self.keep_last)
                secs = time.perf_counter() - t0
                self.on_event(
                    "checkpoint_uploaded",
                    step=step,
                    uri=f"{self.store.uri}/step-{step:08d}",
                    bytes=n,
                    seconds=round(secs, 4),
                    mb_per_s=round(n / 1e6 / max(secs, 1e-9), 2),
                    pruned=removed,
                )
                with self._cv:
                    self.done.add(step)
            except Exception as exc:  # noqa: BLE001 - reported as an event; training goes on, the next save retries
                with self._cv:
                    self.failed[step] = str(exc)
                self.on_event(
                    "upload_failed",
                    step=step,
                    error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
            finally:
                with self._cv:
                    self.in_flight = None
                    self._cv.notify_all()
