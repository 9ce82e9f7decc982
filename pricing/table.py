"""Offers as one columnar table (numpy arrays): fast to filter, small to cache on disk.

One row = one purchasable configuration: cloud, region, zone, instance type, accelerator
name and count, vCPUs, memory, on-demand $/h, spot $/h (NaN when there is no spot offer),
where the price came from and when it was true (Unix time).

Text columns are dictionary-encoded (int32 codes into a small array of labels), so filters
compare integers and the on-disk cache stays a few MB.
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path

import numpy as np

from .offer import Offer

TEXT = ("cloud", "region", "zone", "instance", "accelerator", "source")
NUMERIC = {
    "count": "f4",
    "vcpus": "f4",
    "memory_gb": "f4",
    "price": "f8",
    "spot_price": "f8",
    "as_of": "f8",
    # pricing.outliers flags: 1 the on-demand price, 2 the spot price (not in ORDER: 0 from rows)
    "suspect": "u1",
}
ORDER = (
    "cloud",
    "region",
    "zone",
    "instance",
    "accelerator",
    "count",
    "vcpus",
    "memory_gb",
    "price",
    "spot_price",
    "source",
    "as_of",
)


class OfferTable:
    def __init__(
        self, codes: dict[str, np.ndarray], labels: dict[str, np.ndarray], nums: dict[str, np.ndarray]
    ):
        self.codes, self.labels, self.nums = codes, labels, nums
        self._decoded: dict[str, np.ndarray] = {}
        self._counts: tuple[int, np.ndarray] | None = None  # distinct counts, and each row's code

    def __len__(self) -> int:
        return len(self.nums["price"])

    def __getitem__(self, key: str) -> np.ndarray:
        """A column as values (text columns decoded once and kept)."""
        if key in self.nums:
            return self.nums[key]
        if key not in self._decoded:
            self._decoded[key] = self.labels[key][self.codes[key]] if len(self) else np.empty(0, dtype=str)
        return self._decoded[key]

    def text(self, key: str, i: int) -> str:
        return str(self.labels[key][self.codes[key][i]])

    def isin(self, key: str, values) -> np.ndarray:
        wanted = np.flatnonzero(np.isin(self.labels[key], list(values)))
        return np.isin(self.codes[key], wanted)

    def match(self, key: str, predicate) -> np.ndarray:
        """Rows whose text ``key`` satisfies ``predicate(label)`` (evaluated once per distinct label)."""
        ok = np.array([bool(predicate(str(v))) for v in self.labels[key]], dtype=bool)
        return ok[self.codes[key]] if len(ok) else np.zeros(len(self), dtype=bool)

    def glob(self, key: str, allow: list[str], deny: list[str]) -> np.ndarray:
        if not allow and not deny:
            return np.ones(len(self), dtype=bool)

        def ok(v: str) -> bool:
            v = v.lower()
            return (not allow or any(fnmatch.fnmatch(v, p.lower()) for p in allow)) and not any(
                fnmatch.fnmatch(v, p.lower()) for p in deny
            )

        return self.match(key, ok)

    def distinct(self, key: str, mask: np.ndarray | None = None) -> list[str]:
        codes = self.codes[key] if mask is None else self.codes[key][mask]
        return [str(x) for x in self.labels[key][np.unique(codes)]]

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> "OfferTable":
        cols = list(zip(*rows)) if rows else [()] * len(ORDER)
        data = dict(zip(ORDER, cols))
        codes, labels = {}, {}
        for k in TEXT:
            lab, inv = np.unique(np.array(data[k], dtype=str), return_inverse=True)
            labels[k], codes[k] = lab, inv.astype(np.int32)
        nums = {k: np.array(data[k], dtype=t) for k, t in NUMERIC.items() if k in data}
        nums["suspect"] = np.zeros(len(rows), dtype=NUMERIC["suspect"])
        return cls(codes, labels, nums)

    @classmethod
    def concat(cls, tables: list["OfferTable"]) -> "OfferTable":
        codes, labels = {}, {}
        for k in TEXT:
            lab = (
                np.unique(np.concatenate([t.labels[k] for t in tables])) if tables else np.empty(0, dtype=str)
            )
            labels[k] = lab
            codes[k] = (
                np.concatenate(
                    [np.searchsorted(lab, t.labels[k]).astype(np.int32)[t.codes[k]] for t in tables]
                )
                if tables
                else np.empty(0, np.int32)
            )
        nums = {
            k: np.concatenate([t.nums[k] for t in tables]) if tables else np.empty(0, t_)
            for k, t_ in NUMERIC.items()
        }
        return cls(codes, labels, nums)

    def _count_codes(self) -> tuple[int, np.ndarray]:
        if self._counts is None:
            lab, inv = np.unique(self.nums["count"], return_inverse=True)
            self._counts = (len(lab), inv.astype(np.int64))
        return self._counts

    def key(self, parts: tuple[str, ...], rows: np.ndarray | None = None) -> np.ndarray:
        """One integer per row for the columns ``parts`` (text columns and ``count``), ordering as
        the values do (labels are kept sorted)."""
        rows = slice(None) if rows is None else rows
        key = np.zeros(len(self) if isinstance(rows, slice) else len(rows), dtype=np.int64)
        for k in parts:
            if k == "count":
                n, codes = self._count_codes()
                key = key * n + codes[rows]
            else:
                key = key * len(self.labels[k]) + self.codes[k][rows]
        return key

    MACHINE = (
        "cloud",
        "instance",
        "accelerator",
        "count",
    )  # what one buys: a GCP host with T4:1 or T4:2 differ

    def place_key(self, rows: np.ndarray | None = None, zone: bool = False) -> np.ndarray:
        """One integer per row's machine in its region — (cloud, region, instance, accelerator,
        count) — and with ``zone``, its zone."""
        return self.key(
            ("cloud", "region", "instance", "accelerator", "count") + (("zone",) if zone else ()), rows
        )

    def sorted(self) -> "OfferTable":
        """Rows ordered by (cloud, region, machine, zone): each machine's zones are adjacent, so the
        planner finds a machine's cheapest zone without sorting."""
        return self.take(np.argsort(self.place_key(zone=True), kind="stable"))

    def take(self, idx) -> "OfferTable":
        return OfferTable(
            {k: v[idx] for k, v in self.codes.items()}, self.labels, {k: v[idx] for k, v in self.nums.items()}
        )

    def with_numbers(self, **cols: np.ndarray) -> "OfferTable":
        return OfferTable(self.codes, self.labels, {**self.nums, **cols})

    def with_text(self, key: str, values: np.ndarray) -> "OfferTable":
        lab, inv = np.unique(values, return_inverse=True)
        return OfferTable({**self.codes, key: inv.astype(np.int32)}, {**self.labels, key: lab}, self.nums)

    def offers(self, i: int) -> list[Offer]:
        """Row ``i`` as the offers it makes for one node: on demand, then spot where it has a spot price."""
        text = {k: self.text(k, i) for k in ("cloud", "region", "zone", "instance", "accelerator", "source")}
        n = {k: float(self.nums[k][i]) for k in NUMERIC}
        od = Offer(
            **text,
            count=n["count"],
            vcpus=n["vcpus"],
            memory_gb=n["memory_gb"],
            spot=False,
            hourly=n["price"],
            on_demand_hourly=n["price"],
            as_of=n["as_of"],
        )
        return [od] if np.isnan(n["spot_price"]) else [od, replace(od, spot=True, hourly=n["spot_price"])]

    def save(self, path: Path) -> None:
        import os

        tmp = path.with_name(
            f".{path.stem}.{os.getpid()}.tmp.npz"
        )  # per process: concurrent rebuilds never share it
        arrays = (
            {f"c_{k}": v for k, v in self.codes.items()}
            | {f"l_{k}": v for k, v in self.labels.items()}
            | {f"n_{k}": v for k, v in self.nums.items()}
        )
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "OfferTable":
        with np.load(path, allow_pickle=False) as z:
            return cls(
                {k: z[f"c_{k}"] for k in TEXT},
                {k: z[f"l_{k}"] for k in TEXT},
                {k: z[f"n_{k}"] for k in NUMERIC},
            )
