"""Line charts in Braille dots (2 × 4 per terminal cell), with axes — plain Rich text, no plotting
library. Pure: the same series and size give the same text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from rich.text import Text

BRAILLE = 0x2800
# dot bit of (column, row) inside one cell
_BITS = {
    (0, 0): 0x01,
    (0, 1): 0x02,
    (0, 2): 0x04,
    (1, 0): 0x08,
    (1, 1): 0x10,
    (1, 2): 0x20,
    (0, 3): 0x40,
    (1, 3): 0x80,
}


@dataclass(frozen=True)
class Series:
    points: Sequence[tuple[float, float]]  # (x, y), drawn joined in this order
    style: str = ""


def _num(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _line(x0: int, y0: int, x1: int, y1: int):
    """Bresenham: every dot from (x0, y0) to (x1, y1)."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        yield x0, y0
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def plot(
    series: Sequence[Series],
    width: int,
    height: int,
    xfmt: Callable[[float], str] = _num,
    yfmt: Callable[[float], str] = _num,
    empty: str = "no data yet",
) -> Text:
    """A chart ``width`` × ``height`` cells: y labels, the plot, an x axis and its end labels."""
    pts = [p for s in series for p in s.points]
    if not pts:
        return Text(empty, style="dim")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)
    rows = max(2, height - 2)  # two lines for the x axis and its labels
    ylabels = {0: yfmt(y1), rows - 1: yfmt(y0), (rows - 1) // 2: yfmt((y0 + y1) / 2)}
    lw = max(len(v) for v in ylabels.values())
    cols = max(4, width - lw - 1)
    dots_x, dots_y = 2 * cols, 4 * rows

    def to_dot(x: float, y: float) -> tuple[int, int]:
        dx = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (dots_x - 1))
        dy = round((y1 - y) / (y1 - y0) * (dots_y - 1))
        return dx, dy

    cells = [[0] * cols for _ in range(rows)]
    styles: list[list[str]] = [[""] * cols for _ in range(rows)]
    for s in series:
        prev = None
        for x, y in s.points:
            d = to_dot(x, y)
            for px, py in _line(*prev, *d) if prev is not None else [d]:
                c, r = px // 2, py // 4
                cells[r][c] |= _BITS[(px % 2, py % 4)]
                styles[r][c] = s.style
            prev = d
    out = Text(no_wrap=True, overflow="crop")
    for r in range(rows):
        out.append(ylabels.get(r, "").rjust(lw) + ("┤" if r in ylabels else "│"), style="dim")
        for c in range(cols):
            out.append(chr(BRAILLE + cells[r][c]) if cells[r][c] else " ", style=styles[r][c] or None)
        out.append("\n")
    out.append(" " * lw + "└" + "─" * cols + "\n", style="dim")
    left, right = xfmt(x0), xfmt(x1)
    gap = max(1, cols - len(left) - len(right))
    out.append(" " * (lw + 1) + left + " " * gap + right, style="dim")
    return out
