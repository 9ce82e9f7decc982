"""Plain aligned text tables for the terminal (no colour codes, pipe-friendly)."""

from __future__ import annotations

from spotrain.units import age, hours, money  # noqa: F401 - the CLI's formatting is spotrain.units'


def table(rows: list[list], header: list[str], right: set[int] = frozenset()) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def fmt(r):
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)
        ).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])
