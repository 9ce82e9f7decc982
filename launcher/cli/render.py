"""Plain aligned text tables for the terminal (no colour codes, pipe-friendly)."""

from __future__ import annotations

import time


def table(rows: list[list], header: list[str], right: set[int] = frozenset()) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    def fmt(r):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])


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
