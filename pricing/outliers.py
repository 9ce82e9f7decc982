"""Suspect prices: a row priced far below what the same machine costs everywhere else.

A catalog row can be an artefact — a mis-scraped price, a region that is not really for sale. Such
a row would top every ranking (Azure ``Standard_F8ams_v6`` in newzealandnorth at $0.0898/h against
$0.46–0.72 in every other region), so it is flagged and ranked only when the user trusts it.

A price is suspect when it is below ``FRACTION`` of the median, over the other regions, of the same
cloud's same machine (instance type and accelerators) at the same purchase option (each region
counted once, at its cheapest zone) — and at least ``MIN_OTHER_REGIONS`` other regions price it,
so that the median means something. Prices from the user's price file are never flagged. Pure:
the table comes in, flags come out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .table import OfferTable

FRACTION = 0.25
MIN_OTHER_REGIONS = 2
BITS = {"price": 1, "spot_price": 2}  # the table's ``suspect`` column


@dataclass(frozen=True)
class Suspect:
    row: int
    column: str  # price | spot_price
    price: float
    median_elsewhere: float
    regions_elsewhere: int


def find(t: OfferTable) -> list[Suspect]:
    out: list[Suspect] = []
    if not len(t):
        return out
    group = t.key(
        t.MACHINE
    )  # the same machine: cloud, instance type and accelerators (a TPU-VM is its slice)
    region = t.codes["region"].astype(np.int64)
    for column in BITS:
        v = t[column]
        rows = np.flatnonzero(~np.isnan(v))
        if not len(rows):
            continue
        # rows grouped by (machine, region), cheapest first
        o = rows[np.lexsort((v[rows], region[rows], group[rows]))]
        g, r = group[o], region[o]
        first = np.r_[True, (g[1:] != g[:-1]) | (r[1:] != r[:-1])]
        reps = o[first]  # one row per (machine, region): its cheapest
        starts = np.flatnonzero(np.r_[True, group[reps][1:] != group[reps][:-1]])
        ends = np.r_[starts[1:], len(reps)]
        for s, e in zip(starts.tolist(), ends.tolist()):
            if e - s < MIN_OTHER_REGIONS + 1:
                continue
            prices = v[reps[s:e]]
            if prices.min() >= FRACTION * prices.max():
                continue  # no price can be below a quarter of a median of the others
            for k in range(e - s):
                others = np.delete(prices, k)
                med = float(np.median(others))
                if prices[k] < FRACTION * med:
                    reg = region[reps[s + k]]
                    same = o[(g == group[reps[s]]) & (r == reg)]  # every zone of that region
                    out += [
                        Suspect(int(i), column, float(v[i]), med, e - s - 1)
                        for i in same.tolist()
                        if v[i] < FRACTION * med
                    ]
    return sorted(out, key=lambda x: (x.row, x.column))


def flags(t: OfferTable) -> np.ndarray:
    """The ``suspect`` column for ``t``. A price from the user's own price file is never suspect:
    a negotiated rate is meant to be far below list prices."""
    out = np.zeros(len(t), dtype=np.uint8)
    for s in find(t):
        if t.text("source", s.row) != "user":
            out[s.row] |= BITS[s.column]
    return out
