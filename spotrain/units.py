"""Money and durations as people read them — one formatting for the CLI and the TUI."""

from __future__ import annotations

import re
import time

from spotrain.errors import SpotrainError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DurationError(SpotrainError, ValueError):
    """A duration that is not NUMBER+UNIT (a ValueError too, so schema validators report it)."""


def parse_seconds(text: str, *, unit_required: bool = False) -> float:
    """The one duration parser: ``"250ms"``, ``"45s"``, ``"90m"``, ``"36h"``, ``"7d"`` → seconds; a
    bare number is seconds unless ``unit_required``."""
    m = _DURATION.match(str(text))
    if not m or (unit_required and m.group(2) is None):
        raise DurationError(
            f"duration {text!r} is not NUMBER+UNIT with unit ms, s, m, h or d (e.g. 45s, 36h)"
        )
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def money(x: float) -> str:
    if x >= 100:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:,.2f}"
    return f"${x:.4f}"


def hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:,.1f} h"


def age(ts: float, now: float | None = None) -> str:
    d = ((now or time.time()) - ts) / 86400
    return f"{d * 24:.1f} h" if d < 1 else f"{d:.0f} days"
