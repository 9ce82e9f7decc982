"""Where offers come from, merged by precedence, cached as one columnar table on disk.

Sources, lowest to highest precedence:
1. the built-in snapshot (only when no catalog file is found at all);
2. SkyPilot catalogs ``<dir>/<cloud>/vms.csv`` (schema v8), from the first folder that has
   any: ``$SPOTRAIN_CATALOG_DIR``, ``$SPOTRAIN_HOME/catalogs/v8`` (``catalog refresh``),
   ``$SKY_RUNTIME_DIR/.sky/catalogs/v8`` (SkyPilot's own copy; default home);
3. live AWS spot prices (``catalog refresh --live`` or a plan with AWS credentials);
4. the user price file (``$SPOTRAIN_HOME/prices.yaml`` or ``--prices FILE``).

The merged table is cached under ``$SPOTRAIN_HOME/cache/`` keyed by every source file's path,
size and mtime, so a plan never re-parses CSVs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sources import skypilot, snapshot, user
from . import outliers
from .table import OfferTable

CACHE_VERSION = 4  # 4: rows sorted by (cloud, region, machine, zone), every GCP host, suspect flags
STALE_DAYS = 7.0


def spotrain_home() -> Path:
    from spotrain.paths import home

    return home()


def catalog_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SPOTRAIN_CATALOG_DIR"):
        dirs.append(Path(os.environ["SPOTRAIN_CATALOG_DIR"]).expanduser())
    dirs.append(spotrain_home() / "catalogs" / "v8")
    dirs.append(
        Path(os.environ.get("SKY_RUNTIME_DIR", Path.home())).expanduser() / ".sky" / "catalogs" / "v8"
    )
    return dirs


def find_catalog_dir() -> Path | None:
    for d in catalog_dirs():
        if any((d / c / "vms.csv").is_file() for c in skypilot.CLOUDS):
            return d
    return None


def default_price_file() -> Path:
    return spotrain_home() / "prices.yaml"


@dataclass
class SourceInfo:
    name: str
    path: str
    rows: int
    as_of: float
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0
    notice: str = ""


@dataclass
class Catalog:
    table: OfferTable
    sources: list[SourceInfo]
    cached: bool
    seconds: float
    cache_path: Path | None = None

    def warnings(self) -> list[str]:
        return [w for s in self.sources for w in s.warnings]

    def stale(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        out = []
        for s in self.sources:
            age = (now - s.as_of) / 86400
            if s.name.startswith(("skypilot", "snapshot")) and age > STALE_DAYS:
                out.append(
                    f"{s.name} prices are {age:.0f} days old ({s.path}) — run `spotrain catalog refresh` "
                    "when online"
                )
        return out


def _inputs(cat_dir: Path | None, price_file: Path | None, live_file: Path | None) -> list[tuple[str, Path]]:
    out = []
    if cat_dir is not None:
        out += [
            (f"skypilot:{c}", cat_dir / c / "vms.csv")
            for c in skypilot.CLOUDS
            if (cat_dir / c / "vms.csv").is_file()
        ]
    if live_file is not None and live_file.is_file():
        out.append(("aws-live", live_file))
    if price_file is not None and price_file.is_file():
        out.append(("user", price_file))
    return out


def _key(inputs: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256(str(CACHE_VERSION).encode())
    for name, p in inputs:
        st = p.stat()
        h.update(f"{name}|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def live_file() -> Path:
    return spotrain_home() / "cache" / "aws-spot-live.json"


def load(price_file: Path | None = None, use_cache: bool = True) -> Catalog:
    """Load every source (from the on-disk cache when nothing changed)."""
    t0 = time.perf_counter()
    cat_dir = find_catalog_dir()
    pf = (
        price_file
        if price_file is not None
        else (default_price_file() if default_price_file().is_file() else None)
    )
    if price_file is not None and not price_file.is_file():
        raise user.PriceFileError(f"{price_file}: price file not found — check the path")
    inputs = _inputs(cat_dir, pf, live_file())
    cache_dir = spotrain_home() / "cache"
    cache = cache_dir / f"offers-{_key(inputs)}.npz"
    meta = cache.with_suffix(".json")
    if use_cache and cache.is_file() and meta.is_file():
        try:
            table = OfferTable.load(cache)
            sources = [SourceInfo(**s) for s in json.loads(meta.read_text())]
            return Catalog(table, sources, True, time.perf_counter() - t0, cache)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt below
    tables, sources = [], []
    if cat_dir is None:
        tables.append(OfferTable.from_rows(snapshot.rows()))
        sources.append(
            SourceInfo(
                f"snapshot {snapshot.DATE}",
                "built-in",
                len(tables[-1]),
                snapshot.AS_OF,
                notice=(
                    "no SkyPilot catalog found — using the built-in price snapshot; run `spotrain catalog "
                    "refresh` when online"
                ),
            )
        )
    for name, path in inputs:
        if name.startswith("skypilot:"):
            cloud = name.split(":", 1)[1]
            res = skypilot.read_cloud(path, cloud, path.stat().st_mtime)
            tables.append(OfferTable.from_rows(res.rows))
            sources.append(
                SourceInfo(
                    name, str(path), len(res.rows), path.stat().st_mtime, res.warnings, res.skipped_unpriced
                )
            )
    table = OfferTable.concat(tables)
    for name, path in inputs:
        if name == "aws-live":
            table, info = _apply_live(table, path)
            sources.append(info)
        elif name == "user":
            rows = user.read(path)
            table = _apply_user(table, OfferTable.from_rows(rows))
            sources.append(SourceInfo("user", str(path), len(rows), path.stat().st_mtime))
    table = table.with_numbers(suspect=outliers.flags(table)).sorted()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_meta = cache_dir / f".{meta.name}.{os.getpid()}.tmp"
    tmp_meta.write_text(json.dumps([s.__dict__ for s in sources]))
    tmp_meta.replace(meta)  # metadata first: a reader that sees the table also sees its sources
    table.save(cache)
    for old in list(cache_dir.glob("offers-*.npz")) + list(cache_dir.glob("offers-*.json")):
        if old.stem != cache.stem:  # caches of sources that changed since
            old.unlink(missing_ok=True)
    return Catalog(table, sources, False, time.perf_counter() - t0, cache)


def _apply_user(table: OfferTable, mine: OfferTable) -> OfferTable:
    if not len(mine):
        return table
    keys = {
        (mine.text("cloud", i), mine.text("region", i), mine.text("instance", i)) for i in range(len(mine))
    }
    clouds = {c for c, _, _ in keys}
    cand = np.flatnonzero(table.isin("cloud", clouds) & table.isin("instance", {i for _, _, i in keys}))
    drop = [
        i
        for i in cand.tolist()
        if (table.text("cloud", i), table.text("region", i), table.text("instance", i)) in keys
    ]
    keep = np.ones(len(table), dtype=bool)
    keep[drop] = False
    return OfferTable.concat([table.take(keep), mine])


def _apply_live(table: OfferTable, path: Path) -> tuple[OfferTable, SourceInfo]:
    data = json.loads(path.read_text())
    quotes = {(q["instance"], q["zone_id"]): q for q in data["quotes"]}
    spot, as_of = table["spot_price"].copy(), table["as_of"].copy()
    source = table["source"].copy().astype(object)
    hits = 0
    for i in np.flatnonzero(table.isin("cloud", {"aws"})).tolist():
        q = quotes.get((table.text("instance", i), table.text("zone", i)))
        if q is not None:
            spot[i] = q["price"] if 0 < q["price"] < table["price"][i] else math.nan
            source[i] = "aws-live"
            as_of[i] = q["timestamp"]
            hits += 1
    out = table.with_numbers(spot_price=spot, as_of=as_of).with_text("source", source.astype(str))
    return out, SourceInfo("aws-live", str(path), hits, data["fetched"])


def save_live(quotes: list, fetched: float) -> Path:
    path = live_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fetched": fetched, "quotes": [q.__dict__ for q in quotes]}))
    tmp.replace(path)
    return path
