"""Shared by the pricing commands: load the catalog (with live AWS prices when possible)."""

from __future__ import annotations

import time
from pathlib import Path

import click

LIVE_TTL_S = 15 * 60

price_file_option = click.option("--prices", type=click.Path(dir_okay=False, path_type=Path), default=None,
                                 help="User price file (default: $SPOTRAIN_HOME/prices.yaml if present).")


def warn(msg: str) -> None:
    click.echo(f"warning: {msg}", err=True)


def refresh_live(quiet: bool = False, force: bool = False) -> bool:
    """Fetch live AWS spot prices when credentials exist and the cached ones are older than 15 min."""
    import json

    from spotrain.pricing import catalog
    from spotrain.pricing.sources import aws_live

    if aws_live.credential_source() is None:
        return False
    path = catalog.live_file()
    if not force and path.is_file() and time.time() - json.loads(path.read_text())["fetched"] < LIVE_TTL_S:
        return False
    cat = catalog.load(use_cache=True)
    t = cat.table
    gpu = t.isin("cloud", {"aws"}) & ~t.isin("accelerator", {""})
    regions, types = t.distinct("region", gpu), t.distinct("instance", gpu)
    if not regions:
        return False
    try:
        quotes = aws_live.fetch(regions, types)
    except aws_live.LivePriceError as exc:
        if not quiet:
            warn(f"{exc}; using catalog spot prices")
        return False
    catalog.save_live(quotes, time.time())
    return True


def load_catalog(prices: Path | None, live: bool = True, quiet: bool = False):
    from spotrain.pricing import catalog

    if live:
        refresh_live(quiet)
    cat = catalog.load(prices)
    if not quiet:
        for msg in cat.stale():
            warn(msg)
        if not cat.cached:
            n = len(cat.warnings())
            if n:
                warn(f"{n} catalog row(s) skipped (bad values); see `spotrain catalog info`")
        for s in cat.sources:
            if s.notice:
                warn(s.notice)
    return cat
