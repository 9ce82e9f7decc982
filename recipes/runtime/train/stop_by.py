"""The moment this attempt must have stopped by (budget or deadline), as the jobs controller told
it: ``SPOTRAIN_STOP_BY`` (Unix seconds, set when the attempt starts — on a cloud node it travels in
the SkyPilot task) and, when ``SPOTRAIN_LIMITS_FILE`` names one, a JSON file the controller
rewrites when it moves the moment (``{"stop_by": T, "reason": "budget"}``; the file wins).

The training loop starts a graceful stop (checkpoint, exit ``EXIT_STOPPED``) once the next step,
a save and the exit would not fit before the moment; a watchdog thread ends the process
(``EXIT_KILLED``) at the moment itself, whatever it is doing (data preparation, a hung upload).
Neither needs the controller: a cap holds while it is dead.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

STOP_BY_ENV = "SPOTRAIN_STOP_BY"
LIMITS_FILE_ENV = "SPOTRAIN_LIMITS_FILE"
EXIT_STOPPED = 4  # stopped itself before its stop-by moment, checkpoint saved
EXIT_KILLED = 5  # still running at its stop-by moment: ended by the watchdog
EXIT_SECONDS = 3.0  # interpreter teardown after the save (the controller's reserve counts the same)
DEFAULT_SAVE_SECONDS = 10.0


class StopBy:
    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        env = os.environ if env is None else env
        self.clock = clock
        self.at: float | None = None
        self.reason = "limit"
        raw = (env.get(STOP_BY_ENV) or "").strip()
        if raw:
            try:
                self.at = float(raw)
            except ValueError:
                from spotrain.errors import SpotrainError

                raise SpotrainError(
                    f"{STOP_BY_ENV}={raw!r} is not a Unix time in seconds — unset it or give one"
                ) from None
        path = env.get(LIMITS_FILE_ENV)
        self.path = Path(path) if path else None
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self.refresh()

    @property
    def active(self) -> bool:
        return self.at is not None or self.path is not None

    def refresh(self) -> None:
        """Re-read the limits file if it changed (a stat per call)."""
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except OSError:
            return
        key = (st.st_mtime_ns, st.st_size)
        if key == self._seen:
            return
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # mid-write by a non-atomic writer: the next call reads it
        with self._lock:
            self._seen = key
            at = data.get("stop_by")
            self.at = float(at) if at is not None else None
            self.reason = data.get("reason") or "limit"

    def due(self, step_s: float, save_s: float | None) -> bool:
        """True when one more step, a save and the exit would not end before the moment."""
        self.refresh()
        if self.at is None:
            return False
        save = DEFAULT_SAVE_SECONDS if save_s is None else save_s
        return self.clock() + step_s + save + EXIT_SECONDS >= self.at

    def describe(self) -> str:
        return (
            f"{self.reason} stop-by moment {time.strftime('%H:%M:%S', time.localtime(self.at))}"
            if self.at
            else self.reason
        )

    def start_watchdog(self, poll: float = 0.5) -> threading.Thread | None:
        """End the process at the moment if it is still running then (daemon thread)."""
        if not self.active:
            return None

        def watch() -> None:
            while True:
                self.refresh()
                if self.at is not None and self.clock() >= self.at:
                    print(
                        f"error: still running at its {self.describe()}: ending now so the {self.reason} "
                        "holds (the last complete checkpoint is kept)",
                        file=sys.stderr,
                        flush=True,
                    )
                    os._exit(EXIT_KILLED)
                left = (self.at - self.clock()) if self.at is not None else poll
                time.sleep(min(max(left, 0.01), poll))

        t = threading.Thread(target=watch, name="stop-by-watchdog", daemon=True)
        t.start()
        return t
