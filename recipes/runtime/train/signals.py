"""SIGTERM/SIGINT (a spot interruption notice) become a flag the training loop checks
after each optimizer step: it checkpoints, then exits with 128 + the signal number.
A second SIGINT while waiting interrupts at once."""

from __future__ import annotations

import signal


class StopFlag:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> "StopFlag":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    @property
    def raised(self) -> bool:
        return self.signum is not None
