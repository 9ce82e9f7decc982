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
- ``sync`` brings a remote attempt's log and events into its local folder (no-op locally);
  ``release`` frees what the attempt held (a cloud cluster) once it ended — idempotent; both may
  add keys to the handle, which the controller then stores.
- A provisioning failure found after ``provision`` returned (SkyPilot launches asynchronously)
  is reported by ``state`` with ``provision_error`` set.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from spotrain.errors import SpotrainError
from spotrain.pricing.offer import Offer


CONTROLLER_BEAT = "controller.beat"  # in the job's folder: touched by its controller every tick


class ProvisionError(SpotrainError):
    pass


def holds_resources(handle: dict) -> bool:
    """Whether an attempt still holds something that bills (a cloud cluster not yet torn down).
    ``release`` marks a handle ``released`` once its cluster is gone; a failed teardown leaves it
    unmarked (with ``release_error``) and the controller tries again."""
    return bool(handle.get("cluster")) and not handle.get("released")


@dataclass(frozen=True)
class AttemptState:
    running: bool
    exit_code: int | None = None  # set when the attempt ended and reported its exit status
    gone: bool = False  # ended without an exit status (killed with its node)
    provision_error: str | None = None  # the offer could not be had (found after provision returned)
    error_kind: str | None = None  # no_cloud | unavailable | rejected | unreachable | error
    recoveries: int | None = None  # recoveries the backend made on its own (SkyPilot managed jobs)
    ended_at: float | None = None  # when the attempt (and what it was billed for) ended, if the backend knows


class Backend(abc.ABC):
    name: str = "?"
    emulated: bool = False  # billing emulates a cloud offer's price (shown as "emulated")
    shares_files: bool = False  # the attempt reads files the controller writes (its limits file)
    on_wait = None  # set by the controller: called during long backend calls (keeps its lease)

    @abc.abstractmethod
    def provision(
        self, *, job_id: int, attempt: int, offer: Offer, recipe_path: Path, workdir: Path, env: dict
    ) -> dict: ...

    @abc.abstractmethod
    def state(self, handle: dict) -> AttemptState: ...

    @abc.abstractmethod
    def preempt(self, handle: dict) -> None: ...

    @abc.abstractmethod
    def kill(self, handle: dict) -> None: ...

    @abc.abstractmethod
    def log_path(self, handle: dict) -> Path: ...

    def sync(self, handle: dict) -> None:
        return None

    def release(self, handle: dict) -> None:
        return None

    def close(self) -> None:
        return None


def get_backend(name: str) -> Backend:
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "sky":
        from .skypilot import SkyBackend

        return SkyBackend()
    raise SpotrainError(f"unknown backend {name!r} — available: local, sky")
