"""The money and time limits of a running attempt, as pure arithmetic shared by ``launch``, the
schedules and the controller (time and prices are parameters).

- :func:`stop_by` — the wall-clock moment by which an attempt must have stopped: the earlier of
  the moment its spend reaches the job's cap (at the attempt's price) and the deadline, less the
  hard-kill window. Each attempt is told it (``SPOTRAIN_STOP_BY`` and a limits file the controller
  rewrites when it moves) and stops itself there, gracefully, whether or not a controller watches.
- :func:`stop_reserve` — how long before a limit a graceful stop must start.
- :func:`min_cap` — the least cap that can make progress: start-up, one checkpoint interval and
  the stop reserve at the offer's price. A smaller cap is refused at launch, skipped by schedules
  and not relaunched by the controller: it would pay for a start-up and a stop and train nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

# the node-side half of the rule (the attempt's own reserve) reads the same constants
from spotrain.pricing.offer import Offer
from spotrain.recipes.runtime.train.stop_by import DEFAULT_SAVE_SECONDS, EXIT_SECONDS  # noqa: F401 - re-exported

KILL_TICKS = 2  # the hard-kill window before the cap, in controller ticks
# launch → first training step: this machine's Python, torch and a cached data set (local
# backend); a cloud node's provisioning, setup and the same (SkyPilot; the planner's restart overhead)
STARTUP_SECONDS = {"local": 20.0, "sky": 360.0}

LIMITS_FILE = "limits.json"  # in the attempt's folder (local backend); the node reads it each step


def stop_reserve(save_s: float | None, step_s: float | None, tick: float) -> float:
    """Seconds a graceful stop needs before a budget or deadline limit: finish the current step,
    save, exit — plus ticks of slack; always more than the hard-kill window."""
    save = DEFAULT_SAVE_SECONDS if save_s is None else save_s
    step = 1.0 if step_s is None else step_s
    return save + step + EXIT_SECONDS + 4 * tick


def cap_moment(max_cost: float | None, spend: float, billed_until: float, price_per_h: float) -> float | None:
    """When the job's spend reaches ``max_cost`` if this attempt runs on at ``price_per_h``."""
    if max_cost is None:
        return None
    if price_per_h <= 0:
        return float("inf")
    return billed_until + (max_cost - spend) * 3600.0 / price_per_h


@dataclass(frozen=True)
class StopBy:
    at: float  # Unix seconds: the attempt must have exited by then
    reason: str  # "budget" | "deadline"

    def as_json(self) -> dict:
        return {"stop_by": self.at, "reason": self.reason}


def stop_by(
    max_cost: float | None,
    deadline: float | None,
    spend: float,
    billed_until: float,
    price_per_h: float,
    tick: float,
) -> StopBy | None:
    """The moment an attempt must have stopped by (None without a cap or deadline)."""
    window = KILL_TICKS * tick
    out: list[StopBy] = []
    cap = cap_moment(max_cost, spend, billed_until, price_per_h)
    if cap is not None and cap != float("inf"):
        out.append(StopBy(cap - window, "budget"))
    if deadline is not None:
        out.append(StopBy(deadline - window, "deadline"))
    return min(out, key=lambda s: s.at) if out else None


def write_limits(path: Path, limit: StopBy | None) -> None:
    """Atomically (re)write an attempt's limits file; the node re-reads it when it changes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(limit.as_json() if limit is not None else {"stop_by": None, "reason": None}))
    os.replace(tmp, path)


def startup_seconds(backend: str) -> float:
    return STARTUP_SECONDS.get(backend, STARTUP_SECONDS["sky"])


def min_cap(price_per_h: float, startup_s: float, interval_s: float, reserve_s: float) -> float:
    """The least cap with which an attempt at ``price_per_h`` gets past one checkpoint."""
    return price_per_h * (startup_s + interval_s + reserve_s) / 3600.0


def viable_cap(recipe, offer: Offer, backend: str, tick: float = 1.0, steps_left: int | None = None) -> float:
    """:func:`min_cap` for ``recipe`` on ``offer`` (a planner offer, with its estimated ``hours``): its
    checkpoint interval from the recipe and the offer's estimated step time, or the work left if
    that is shorter."""
    from spotrain.pricing.estimate import checkpoint_interval_hours

    hours = offer.hours or 0.0
    steps = recipe.train.steps
    step_s = hours * 3600.0 / steps if steps else 0.0
    interval_s = checkpoint_interval_hours(recipe, hours) * 3600.0
    if steps_left is not None:
        interval_s = min(interval_s, max(steps_left, 0) * step_s)
    return min_cap(offer.hourly, startup_seconds(backend), interval_s, stop_reserve(None, step_s, tick))
