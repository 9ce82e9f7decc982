"""The boundary between spotrain's controller and wherever attempts run.

Contracts (every backend keeps them):
- ``provision`` starts one attempt of the job on ``offer`` and returns a JSON-able handle;
  it returns promptly (the attempt runs asynchronously). Raising ``ProvisionError`` means
  the offer could not be had (the controller tries the next one); nothing was started.
- ``state`` never raises for a vanished attempt: it reports ``gone`` instead.
- ``preempt`` delivers the cloud's interruption notice (SIGTERM on the training process);
  ``kill`` ends the attempt at once (SIGKILL). Both are idempotent and return silently if
  the attempt is already gone.
- ``log_path`` is where the attempt's combined output is (or will be) written.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from spotrain.errors import SpotrainError


class ProvisionError(SpotrainError):
    pass


@dataclass(frozen=True)
class AttemptState:
    running: bool
    exit_code: int | None = None  # set when the attempt ended and reported its exit status
    gone: bool = False  # ended without an exit status (killed with its node)


class Backend(abc.ABC):
    name: str = "?"
    emulated: bool = False  # billing emulates a cloud offer's price (shown as "emulated")

    @abc.abstractmethod
    def provision(self, *, job_id: int, attempt: int, offer: dict, recipe_path: Path, workdir: Path, env: dict) -> dict: ...

    @abc.abstractmethod
    def state(self, handle: dict) -> AttemptState: ...

    @abc.abstractmethod
    def preempt(self, handle: dict) -> None: ...

    @abc.abstractmethod
    def kill(self, handle: dict) -> None: ...

    @abc.abstractmethod
    def log_path(self, handle: dict) -> Path: ...


def get_backend(name: str) -> Backend:
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    raise SpotrainError(f"unknown backend {name!r} — available: local")
