"""The spot policy interface, shared by the trace simulator and the live jobs controller.

At each decision point a policy sees the job (``JobView``), where it runs now (``Placement``)
and what can be had now, zone by zone (``ZoneView``) — never the future — and returns a
``Decision``: spot in a zone, on-demand in a zone, or wait. Policies may remember what they
have seen (availability history); a fresh object is made per job with ``make``.

All quantities are seconds and $/h, so the same object drives a simulated 30-second tick and
a real controller tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from spotrain.errors import SpotrainError

SPOT = "spot"
ON_DEMAND = "on-demand"
WAIT = "wait"

EPS = 1e-6


@dataclass(frozen=True)
class JobView:
    total_work_s: float  # work the whole job needs
    remaining_s: float  # work still to do (committed progress, i.e. what a restart resumes from)
    elapsed_s: float  # since the job started
    time_left_s: float  # to the deadline (negative once past it); inf without a deadline
    overhead_s: float  # what each (re)start costs before work progresses
    step_s: float  # time until the policy is asked again
    checkpoint_interval_s: float | None = None  # None: every preemption loses only the overhead
    since_checkpoint_s: float = 0.0  # work done since the last checkpoint (lost if preempted)

    @property
    def slack_s(self) -> float:
        """Time the job may still spend without progressing and finish on time."""
        return self.time_left_s - self.remaining_s


@dataclass(frozen=True)
class ZoneView:
    name: str
    spot_up: bool
    spot_price: float  # $/h
    od_price: float  # $/h


@dataclass(frozen=True)
class Placement:
    kind: str = WAIT  # SPOT, ON_DEMAND or WAIT (nothing running)
    zone: int | None = None
    overhead_left_s: float = 0.0  # still restarting
    running_s: float = 0.0  # since this instance started


@dataclass(frozen=True)
class Decision:
    kind: str
    zone: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in (SPOT, ON_DEMAND, WAIT):
            raise ValueError(f"decision kind {self.kind!r}")


WAIT_DECISION = Decision(WAIT)


@dataclass(frozen=True)
class SpellStats:
    """Spot availability observed over some period: the lengths (seconds) of its spells with
    spot up and with spot down, oldest first, and — when the period ends now — the spell still
    going on (``current``: up or down, ``current_s`` its age so far; not in ``up``/``down``)."""

    up: tuple[float, ...] = ()
    down: tuple[float, ...] = ()
    current: bool | None = None
    current_s: float = 0.0
    first_up: bool = True  # the spells alternated, starting with this side

    def sequence(self) -> list[tuple[bool, float]]:
        """The finished spells in the order they happened: (spot up?, seconds)."""
        a, b = (self.up, self.down) if self.first_up else (self.down, self.up)
        out: list[tuple[bool, float]] = []
        for i in range(max(len(a), len(b))):
            if i < len(a):
                out.append((self.first_up, a[i]))
            if i < len(b):
                out.append((not self.first_up, b[i]))
        return out


@dataclass(frozen=True)
class MarketHistory:
    """What was observed before the job started (per zone, and for "some zone has spot")."""

    zones: tuple[SpellStats, ...]
    any: SpellStats


class Policy:
    """Base class. Subclasses set ``name``, ``deadline_safe`` and implement ``decide``."""

    name = "policy"
    deadline_safe = False  # never misses a feasible deadline when on-demand is always obtainable
    multi_zone = False  # moves between zones on its own

    def decide(self, job: JobView, at: Placement, zones: Sequence[ZoneView]) -> Decision:
        raise NotImplementedError

    def warm(self, history: MarketHistory) -> None:
        """Learn from the market's past before the first decision (optional)."""

    # helpers shared by the policies ------------------------------------------------------
    @staticmethod
    def can_idle(job: JobView) -> bool:
        """Waiting (or restarting) for one more step is safe: in the worst case the step makes no
        progress and the job must then restart on on-demand: slack − step ≥ overhead."""
        return job.time_left_s == float("inf") or job.slack_s - job.step_s >= job.overhead_s - EPS

    @staticmethod
    def can_keep_spot(job: JobView, at: Placement) -> bool:
        """Running on for one more step on a spot instance that is past its restart is safe: a
        preemption at the step's end loses only the work since the last checkpoint."""
        if at.kind != SPOT or at.overhead_left_s > 0:
            return False
        at_risk = job.since_checkpoint_s + job.step_s if job.checkpoint_interval_s else 0.0
        return job.time_left_s == float("inf") or job.slack_s - at_risk >= job.overhead_s - EPS

    @classmethod
    def safe(cls, d: Decision, job: JobView, at: Placement) -> bool:
        """Whether decision ``d`` keeps the deadline in the worst case (on-demand always does)."""
        if d.kind == ON_DEMAND:
            return True
        if d.kind == SPOT and at.kind == SPOT and d.zone == at.zone and at.overhead_left_s <= 0:
            return cls.can_keep_spot(job, at)
        return cls.can_idle(job)

    @classmethod
    def must_commit(cls, job: JobView, at: Placement) -> bool:
        """True when only on-demand is safe now. When it is False but ``can_idle`` is, the only
        safe choices are on-demand and keeping the spot instance that runs."""
        return not cls.can_idle(job) and not cls.can_keep_spot(job, at)

    @staticmethod
    def od_zone(at: Placement) -> int:
        return at.zone if at.zone is not None else 0


REGISTRY: dict[str, Callable[..., Policy]] = {}


def register(cls):
    REGISTRY[cls.name] = cls
    return cls


def make(name: str, **options) -> Policy:
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise SpotrainError(f"unknown policy {name!r}: choose from {', '.join(sorted(REGISTRY))}") from None
    return factory(**options)
