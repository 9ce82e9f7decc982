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


class EventTail:
    """The one reader of an ``events.jsonl``: each ``read()`` returns only the complete events
    appended since the last call (offset-based: a multi-day job's file is tens of MB and the
    controller, ``status`` and the TUI look every second or two). A cut-short last line waits for
    its newline; a line that is not JSON is skipped. A file that shrank or was replaced (another
    inode: the SkyPilot backend rewrites its copy) is read again from the start, and ``read``
    says so, so a caller that folds events can start its fold over."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._ino: int | None = None

    def read(self) -> tuple[list[dict], bool]:
        """(new events, whether the file was rewritten since the last call)."""
        try:
            st = self.path.stat()
        except OSError:
            reset = self.offset > 0
            self.offset, self._ino = 0, None
            return [], reset
        reset = False
        if (self._ino is not None and st.st_ino != self._ino) or st.st_size < self.offset:
            self.offset, reset = 0, True
        self._ino = st.st_ino
        if st.st_size == self.offset:
            return [], reset
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(st.st_size - self.offset)
        end = chunk.rfind(b"\n") + 1
        events = []
        for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(ev, dict):
                events.append(ev)
        self.offset += end
        return events, reset


def read_events(path: Path) -> list[dict]:
    """Every complete event of one ``events.jsonl`` (a cut-short last line is skipped)."""
    return EventTail(path).read()[0]
