"""The metrics contract: an append-only JSONL event stream in the run folder.

Each line is one JSON object with at least ``event`` and ``time`` (Unix seconds). Events:
``run_start``, ``data_stats``, ``model``, ``checkpoint_restored``, ``step`` (step, loss, lr,
grad_norm, tokens, tokens_per_s, elapsed_s), ``eval`` (split, loss, perplexity, accuracy,
...), ``generation`` (bleu, chrf), ``checkpoint_saved`` (step, path, bytes, seconds),
``interrupted`` (signal, step), ``run_end`` (status). Readers must ignore unknown events
and fields. After a hard kill the last line may be cut short; the next writer drops it.

With ``SPOTRAIN_EVENTS_STDOUT=1`` (set on SkyPilot nodes) every event is also printed to stdout
as ``SPOTRAIN_EVENT {json}``: the controller follows a remote run through its log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator


def repair_tail(path: Path) -> None:
    """Drop a partial last line left by a hard kill, so the file stays valid JSONL."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos = size - 1
        while pos > 0:
            step = min(4096, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                fh.truncate(pos - step + nl + 1)
                return
            pos -= step
        fh.truncate(0)


EVENT_MARK = "SPOTRAIN_EVENT "


class EventLog:
    def __init__(self, path: Path, enabled: bool = True, clock=time.time):
        self.path = Path(path)
        self.enabled = enabled
        self.clock = clock
        self._fh = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_tail(self.path)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._mirror = enabled and os.environ.get("SPOTRAIN_EVENTS_STDOUT", "") not in ("", "0")

    def emit(self, event: str, **fields) -> dict:
        record = {"event": event, "time": round(self.clock(), 3), **fields}
        if self._fh is not None:
            line = json.dumps(record, separators=(",", ":"))
            self._fh.write(line + "\n")
            self._fh.flush()
            if self._mirror:
                sys.stdout.write(EVENT_MARK + line + "\n")
                sys.stdout.flush()
        return record

    def sync(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_events(path: Path) -> Iterator[dict]:
    """Yield complete events; a cut-short last line is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                yield json.loads(line)
