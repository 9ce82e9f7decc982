"""Spot availability traces (the Can't Be Late format) as simulation scenarios.

A trace file is ``{"metadata": {"gap_seconds": N}, "data": [...], "prices": [...]?}``: each
value the number of spot instances obtainable at that tick, ``prices`` (optional) the spot
$/h per tick. A *scenario* is a set of zones replayed together: one file (single-zone) or
one folder whose files are its zones (``--multi-zone``). Pure functions plus the file reader.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotrain.errors import SpotrainError

# Time advances in whole steps: the trace tick, cut into the fewest equal parts that express the
# restart overhead as whole steps within this relative error (72 s on a 32 s tick: 2 steps = 64 s;
# on a 600 s tick: 75 s steps). The effective overhead is reported with every result.
OVERHEAD_TOLERANCE = 0.2


@dataclass(frozen=True)
class Scenario:
    name: str
    zones: tuple[str, ...]
    avail: np.ndarray  # [zones, ticks] instances available
    prices: np.ndarray  # [zones, ticks] spot $/h per tick, nan where the trace has none
    gap_s: float

    @property
    def ticks(self) -> int:
        return self.avail.shape[1]

    @property
    def hours(self) -> float:
        return self.ticks * self.gap_s / 3600


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    try:
        doc = json.loads(path.read_text())
        data = np.asarray([int(x) for x in doc["data"]], dtype=np.int32)
        gap = float(doc["metadata"]["gap_seconds"])
        raw = doc.get("prices")
    except FileNotFoundError:
        raise SpotrainError(f"{path}: trace file not found") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SpotrainError(
            f'{path}: not a spot trace — expected {{"metadata": {{"gap_seconds": N}}, "data": [...]}}'
        ) from None
    if data.size == 0 or not gap > 0:
        raise SpotrainError(f"{path}: empty trace or gap_seconds not positive")
    if (data < 0).any():
        raise SpotrainError(f"{path}: negative instance counts in data")
    prices = np.full(data.shape, np.nan)
    if raw is not None:
        if not isinstance(raw, list) or len(raw) != len(data):
            raise SpotrainError(f"{path}: prices must be a list as long as data ({len(data)})")
        prices = np.asarray([np.nan if p is None else float(p) for p in raw])
        if (prices[~np.isnan(prices)] <= 0).any():
            raise SpotrainError(f"{path}: prices must be positive $/h")
    return data, prices, gap


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())


def load_scenarios(root: Path, multi_zone: bool = False) -> list[Scenario]:
    """Every scenario under ``root`` (a trace file or a folder searched recursively)."""
    root = Path(root)
    if not root.exists():
        raise SpotrainError(f"{root}: no such trace file or folder")
    if root.is_file():
        folders = {root.parent: [root]}
    else:
        folders = {}
        for p in sorted(root.rglob("*.json")):
            folders.setdefault(p.parent, []).append(p)
    if not folders:
        raise SpotrainError(f"{root}: no *.json trace files")
    out = []
    for folder, files in sorted(folders.items()):
        rel = folder.relative_to(root) if root.is_dir() else Path(folder.name)
        groups = [files] if multi_zone else [[f] for f in files]
        for group in groups:
            read = [read_trace(f) for f in group]
            gaps = {g for _, _, g in read}
            if len(gaps) > 1:
                raise SpotrainError(
                    f"{folder}: zones of one scenario must share gap_seconds (found {sorted(gaps)})"
                )
            n = max(len(d) for d, _, _ in read)
            # zones of different length are replayed cyclically to the longest
            avail = np.stack([np.resize(d, n) for d, _, _ in read])
            prices = np.stack([np.resize(p, n) for _, p, _ in read])
            name = str(rel) if multi_zone else str(rel / group[0].stem)
            out.append(Scenario(name, tuple(f.stem for f in group), avail, prices, gaps.pop()))
    return out


@dataclass(frozen=True)
class Setting:
    work_h: float = 48.0
    deadline_h: float = 52.0
    overhead_h: float = 0.1
    od_price: float = 3.06
    spot_price: float = 0.9731  # used where a trace has no prices
    checkpoint_h: float | None = None  # None: a preemption loses only the restart overhead
    nodes: int = 1  # a zone has spot when at least this many instances are available
    trace_prices: bool = True


@dataclass(frozen=True)
class Timeline:
    """One run's world, in whole steps: availability and spot prices from the start offset."""

    zones: tuple[str, ...]
    step_s: float
    up: np.ndarray  # [zones, horizon] bool
    spot_price: np.ndarray  # [zones, horizon] $/h
    od_price: float
    work: int  # steps of work
    overhead: int  # steps per (re)start
    checkpoint: int | None  # steps of work between checkpoints

    @property
    def horizon(self) -> int:
        return self.up.shape[1]

    def steps(self, hours: float) -> int:
        return int(math.floor(hours * 3600 / self.step_s + 1e-9))


def resample(
    scn: Scenario, start_tick: int, step_s: float, steps: int, nodes: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Availability and spot prices of ``scn`` at ``steps`` points ``step_s`` apart from
    ``start_tick`` (cyclic): for forecasts, whose steps need not divide the trace's tick."""
    ticks = (start_tick + (np.arange(steps) * step_s // scn.gap_s).astype(np.int64)) % scn.ticks
    return scn.avail[:, ticks] >= nodes, scn.prices[:, ticks]


def step_seconds(gap_s: float, overhead_s: float) -> float:
    if overhead_s <= 0:
        return gap_s
    m = 1
    while True:
        step = gap_s / m
        k = max(1, round(overhead_s / step))
        if abs(k * step - overhead_s) <= OVERHEAD_TOLERANCE * overhead_s:
            return step
        m += 1


def timeline(scn: Scenario, s: Setting, start_tick: int, horizon_h: float) -> Timeline:
    """Replay ``scn`` from ``start_tick`` (cyclically) for ``horizon_h`` hours."""
    step = step_seconds(scn.gap_s, s.overhead_h * 3600)
    per_tick = int(round(scn.gap_s / step))
    horizon = int(math.floor(horizon_h * 3600 / step + 1e-9))
    n_ticks = -(-horizon // per_tick) + 1
    idx = (start_tick + np.arange(n_ticks)) % scn.ticks
    up = np.repeat(scn.avail[:, idx] >= s.nodes, per_tick, axis=1)[:, :horizon]
    prices = np.repeat(scn.prices[:, idx], per_tick, axis=1)[:, :horizon]
    if not s.trace_prices:
        prices = np.full_like(prices, np.nan)
    prices = np.where(np.isnan(prices), s.spot_price, prices) * s.nodes
    work = int(math.ceil(s.work_h * 3600 / step - 1e-9))
    overhead = max(1, int(round(s.overhead_h * 3600 / step))) if s.overhead_h > 0 else 0
    ckpt = None if s.checkpoint_h is None else max(1, int(round(s.checkpoint_h * 3600 / step)))
    return Timeline(scn.zones, step, up, prices, s.od_price * s.nodes, work, overhead, ckpt)


HISTORY_H = 7 * 24.0  # how much of the trace before a run's start its policy may learn from


def spell_stats(up: np.ndarray, gap_s: float, open_end: bool = False):
    """Spell lengths of ``up``; with ``open_end`` the last spell is still going on (the period
    ends now), so it is reported as the current spell rather than as a finished one."""
    from .policies.base import SpellStats

    if up.size == 0:
        return SpellStats()
    starts = np.concatenate([[0], np.flatnonzero(np.diff(up.astype(np.int8))) + 1])
    lengths = np.diff(np.concatenate([starts, [up.size]])) * gap_s
    firsts = up[starts]
    current, current_s = None, 0.0
    if open_end:
        current, current_s = bool(firsts[-1]), float(lengths[-1])
        lengths, firsts = lengths[:-1], firsts[:-1]
    return SpellStats(
        tuple(float(x) for x in lengths[firsts]),
        tuple(float(x) for x in lengths[~firsts]),
        current,
        current_s,
        bool(firsts[0]) if firsts.size else True,
    )


def history(scn: Scenario, start_tick: int, nodes: int = 1, hours: float = HISTORY_H, open_end: bool = True):
    """Availability statistics of the ``hours`` before ``start_tick`` (no wrap-around: only the
    real past of the trace). With ``open_end`` the history runs up to the start, so its last
    spell is the one in progress there (``SpellStats.current``); without it (statistics of a
    market, not the past of one run) every spell counts as finished."""
    from .policies.base import MarketHistory

    lo = max(0, start_tick - int(hours * 3600 / scn.gap_s))
    up = scn.avail[:, lo:start_tick] >= nodes
    return MarketHistory(
        tuple(spell_stats(u, scn.gap_s, open_end) for u in up),
        spell_stats(up.any(axis=0), scn.gap_s, open_end),
    )


def stats(scn: Scenario, nodes: int = 1) -> dict:
    """Availability statistics of a scenario, per zone: fraction up, mean up and down spell."""
    out = {}
    for z, name in enumerate(scn.zones):
        up = scn.avail[z] >= nodes
        changes = np.flatnonzero(np.diff(up.astype(np.int8))) + 1
        spells = np.split(up, changes)
        ups = [len(x) for x in spells if x[0]]
        downs = [len(x) for x in spells if not x[0]]
        h = scn.gap_s / 3600
        out[name] = {
            "fraction_up": float(up.mean()),
            "mean_up_h": float(np.mean(ups) * h) if ups else 0.0,
            "mean_down_h": float(np.mean(downs) * h) if downs else 0.0,
            "hours": scn.hours,
        }
    return out
