"""``spotrain catalog info|refresh``: where prices come from, how old they are, and updating them."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import click

from . import render
from .pricing_common import price_file_option, warn

DEFAULT_URL = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v8"


@click.group()
def catalog() -> None:
    """Price catalogs: sources, age, refresh."""


@catalog.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@price_file_option
def info(as_json: bool, prices: Path | None) -> None:
    """Show each price source: rows, age, warnings; and the cache."""
    from spotrain.pricing import catalog as cat_mod

    from spotrain.pricing import outliers

    cat = cat_mod.load(prices)
    now = time.time()
    t = cat.table
    suspects = [
        {
            "cloud": t.text("cloud", x.row),
            "region": t.text("region", x.row),
            "zone": t.text("zone", x.row),
            "instance": t.text("instance", x.row),
            "purchase": "spot" if x.column == "spot_price" else "on-demand",
            "price": x.price,
            "median_elsewhere": x.median_elsewhere,
            "regions_elsewhere": x.regions_elsewhere,
        }
        for x in outliers.find(t)
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "sources": [s.__dict__ for s in cat.sources],
                    "offers": len(cat.table),
                    "cache": str(cat.cache_path),
                    "cache_bytes": cat.cache_path.stat().st_size if cat.cache_path else 0,
                    "stale": cat.stale(now),
                    "catalog_dirs": [str(d) for d in cat_mod.catalog_dirs()],
                    "suspect_prices": suspects,
                },
                indent=2,
            )
        )
        return
    rows = [
        [s.name, f"{s.rows:,}", render.age(s.as_of, now), len(s.warnings), s.skipped, s.path]
        for s in cat.sources
    ]
    click.echo(
        render.table(rows, ["source", "offers", "age", "warnings", "unpriced", "path"], right={1, 3, 4})
    )
    size = cat.cache_path.stat().st_size if cat.cache_path and cat.cache_path.exists() else 0
    click.echo(
        f"{len(cat.table):,} offers; cache {cat.cache_path} ({size / 1e6:.1f} MB, "
        f"{'hit' if cat.cached else 'rebuilt'} in {cat.seconds * 1000:.0f} ms)"
    )
    if suspects:
        click.echo(
            f"{len(suspects)} suspect prices — below {outliers.FRACTION:.0%} of the median of the same "
            "machine's other regions; `plan`/`launch` rank them only with --trust-outliers:"
        )
        shown = [
            [
                f"{x['cloud']}/{x['region']}",
                x["zone"] or "-",
                x["instance"],
                x["purchase"],
                render.money(x["price"]),
                render.money(x["median_elsewhere"]),
                x["regions_elsewhere"],
            ]
            for x in suspects[:20]
        ]
        click.echo(
            render.table(
                shown,
                ["where", "zone", "instance", "purchase", "$/h", "median elsewhere", "regions"],
                right={4, 5, 6},
            )
        )
        if len(suspects) > 20:
            click.echo(f"… and {len(suspects) - 20} more (--json lists all)")
    for w in cat.warnings()[:20]:
        warn(w)
    if len(cat.warnings()) > 20:
        warn(f"... and {len(cat.warnings()) - 20} more")
    for s in cat.stale(now):
        warn(s)


@catalog.command()
@click.option(
    "--clouds",
    default="aws,gcp,azure,lambda,runpod,vast,nebius",
    show_default=True,
    help="Comma-separated clouds.",
)
@click.option(
    "--live/--no-live",
    default=True,
    show_default=True,
    help="Also fetch live AWS spot prices when credentials exist.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per download.")
def refresh(clouds: str, live: bool, timeout: float) -> None:
    """Download the newest SkyPilot catalogs into $SPOTRAIN_HOME/catalogs/v8 (old ones kept on failure)."""
    from spotrain.pricing import catalog as cat_mod
    from spotrain.pricing.sources import skypilot

    base = os.environ.get("SPOTRAIN_CATALOG_URL", DEFAULT_URL).rstrip("/")
    dest = cat_mod.spotrain_home() / "catalogs" / "v8"
    ok, failed = [], []
    for cloud in [c.strip() for c in clouds.split(",") if c.strip()]:
        url = f"{base}/{cloud}/vms.csv"
        target = dest / cloud / "vms.csv"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = resp.read()
            head = body.split(b"\n", 1)[0].decode("utf-8", "replace")
            if "InstanceType" not in head or "Price" not in head:
                raise ValueError(f"not a catalog (header {head[:60]!r})")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = getattr(exc, "reason", exc)
            kept = (
                f"keeping the copy from {render.age(target.stat().st_mtime)} ago"
                if target.exists()
                else "no local copy"
            )
            failed.append(cloud)
            warn(f"{cloud}: cannot fetch {url} ({why}) — {kept}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(body)
        tmp.replace(target)
        res = skypilot.read_cloud(target, cloud, time.time())
        ok.append(cloud)
        click.echo(f"{cloud}: {len(res.rows):,} offers ({len(body) / 1e6:.1f} MB)")
    if live:
        from spotrain.pricing.live import refresh_live

        fetched, warnings = refresh_live(force=True)
        for w in warnings:
            warn(w)
        if fetched:
            click.echo("aws-live: spot prices fetched")
    if failed and not ok:
        raise click.exceptions.Exit(1)
