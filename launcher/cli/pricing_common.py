"""Shared by the pricing commands: the catalog (pricing.live), its warnings printed."""

from __future__ import annotations

from pathlib import Path

import click

price_file_option = click.option(
    "--prices",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="User price file (default: $SPOTRAIN_HOME/prices.yaml if present).",
)


def warn(msg: str) -> None:
    click.echo(f"warning: {msg}", err=True)


def load_catalog(prices: Path | None, live: bool = True, quiet: bool = False):
    from spotrain.pricing import live as live_prices

    cat, warnings = live_prices.load_catalog(prices, live=live)
    if not quiet:
        for w in warnings:
            warn(w)
    return cat
