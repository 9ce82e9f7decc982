"""Preemption injection for the local backend, as a cloud does it: a seeded random hazard, or
the replay of an availability trace (the Can't Be Late format) scaled in time. Pure: the
schedule is a function of the seed/trace, the job start and ``now``."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from spotrain.errors import SpotrainError


@dataclass
class Injector:
    """Decides when spot capacity is reclaimed (``due``) and whether spot capacity exists now."""

    start: float
    every: float | None = None  # mean seconds between preemptions (exponential), seeded
    seed: int = 0
    trace: list[int] | None = None
    gap_seconds: float = 60.0
    speed: float = 1.0  # trace seconds per wall second
    nodes: int = 1
    _next: float | None = field(default=None, init=False)
    _rng: random.Random = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.every:
            self._next = self.start + self._rng.expovariate(1 / self.every)

    @classmethod
    def from_options(cls, opts: dict, start: float) -> "Injector":
        trace = None
        gap = 60.0
        if opts.get("preempt_trace"):
            trace, gap = load_trace(Path(opts["preempt_trace"]))
        return cls(
            start=start,
            every=opts.get("preempt_every"),
            seed=opts.get("seed", 0),
            trace=trace,
            gap_seconds=gap,
            speed=opts.get("trace_speed", 1.0),
            nodes=opts.get("nodes", 1),
        )

    def spot_available(self, now: float) -> bool:
        if self.trace is None:
            return True
        i = int((now - self.start) * self.speed / self.gap_seconds) % len(self.trace)
        return self.trace[i] >= self.nodes

    def due(self, now: float, spot_running_since: float) -> bool:
        """True when the running spot attempt should be preempted now (consumes the event)."""
        if self.trace is not None and not self.spot_available(now):
            return True
        if self._next is not None and now >= self._next:
            while self._next <= now:
                self._next += self._rng.expovariate(1 / self.every)
            return now - spot_running_since > 0
        return False


def load_trace(path: Path) -> tuple[list[int], float]:
    try:
        doc = json.loads(path.read_text())
        data = [int(x) for x in doc["data"]]
        gap = float(doc["metadata"]["gap_seconds"])
    except FileNotFoundError:
        raise SpotrainError(f"{path}: trace file not found") from None
    except (ValueError, KeyError, TypeError):
        raise SpotrainError(
            f'{path}: not a spot trace ({{"metadata": {{"gap_seconds": N}}, "data": [...]}})'
        ) from None
    if not data or gap <= 0:
        raise SpotrainError(f"{path}: empty trace or non-positive gap_seconds")
    return data, gap
