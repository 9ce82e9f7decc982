"""The catalog as planning uses it: with live AWS spot prices refreshed when credentials exist and
the cached ones are older than 15 minutes. Problems come back as warnings for the caller to show."""

from __future__ import annotations

import json
import time
from pathlib import Path

LIVE_TTL_S = 15 * 60


def refresh_live(force: bool = False) -> tuple[bool, list[str]]:
    """Fetch live AWS spot prices when credentials exist and the cached ones are stale.
    Returns (whether new prices were saved, warnings)."""
    from . import catalog
    from .sources import aws_live

    if aws_live.credential_source() is None:
        return False, []
    path = catalog.live_file()
    if not force and path.is_file() and time.time() - json.loads(path.read_text())["fetched"] < LIVE_TTL_S:
        return False, []
    cat = catalog.load(use_cache=True)
    t = cat.table
    gpu = t.isin("cloud", {"aws"}) & ~t.isin("accelerator", {""})
    regions, types = t.distinct("region", gpu), t.distinct("instance", gpu)
    if not regions:
        return False, []
    try:
        quotes = aws_live.fetch(regions, types)
    except aws_live.LivePriceError as exc:
        return False, [f"{exc}; using catalog spot prices"]
    catalog.save_live(quotes, time.time())
    return True, []


def load_catalog(prices: Path | None, live: bool = True):
    """(catalog, warnings): the merged catalog, live prices refreshed first when ``live``."""
    from . import catalog

    warnings: list[str] = []
    if live:
        warnings += refresh_live()[1]
    cat = catalog.load(prices)
    warnings += list(cat.stale())
    if not cat.cached:
        n = len(cat.warnings())
        if n:
            warnings.append(f"{n} catalog row(s) skipped (bad values); see `spotrain catalog info`")
    warnings += [s.notice for s in cat.sources if s.notice]
    return cat, warnings
