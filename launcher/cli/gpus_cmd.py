"""``spotrain gpus``: cheapest spot and on-demand price per accelerator across clouds."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from . import render
from .pricing_common import load_catalog, price_file_option


def cheapest_by(table, key_cols: list[str], price_col: str, mask) -> dict[tuple, int]:
    """Row index of the cheapest ``price_col`` for each key (ties: first cloud/region alphabetically)."""
    idx = np.flatnonzero(mask & ~np.isnan(table[price_col]))
    best: dict[tuple, int] = {}

    def text(c):
        return table.labels[c][table.codes[c][idx]].tolist() if c in table.labels else table[c][idx].tolist()

    cols = [text(c) for c in key_cols]
    prices = table[price_col][idx].tolist()
    clouds, regions = text("cloud"), text("region")
    for j, i in enumerate(idx.tolist()):
        k = tuple(c[j] for c in cols)
        cur = best.get(k)
        if cur is None or (prices[j], clouds[j], regions[j]) < cur[0]:
            best[k] = ((prices[j], clouds[j], regions[j]), i)
    return {k: v[1] for k, v in best.items()}


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-live", is_flag=True, help="Do not fetch live AWS spot prices even with credentials.")
@price_file_option
def gpus(name: str | None, as_json: bool, no_live: bool, prices: Path | None) -> None:
    """Cheapest spot and on-demand $/h per accelerator (and count) across clouds, with regions.

    With NAME, one row per cloud and instance type offering it."""
    from spotrain.pricing import accelerators as accel
    from spotrain.pricing.planner import PlanError

    cat = load_catalog(prices, live=not no_live, quiet=as_json)
    t = cat.table
    mask = ~t.isin("accelerator", {""})
    keys = ["accelerator", "count"]
    if name:
        known = set(t.labels["accelerator"].tolist()) - {""}
        canon = accel.canonical(name, known)
        if canon is None or canon not in known:
            hint = accel.suggest(name, known)
            raise PlanError(
                f"no offers for accelerator {name!r}"
                + (f" — did you mean {' or '.join(hint)}?" if hint else "")
            )
        mask &= t.isin("accelerator", {canon})
        keys = ["accelerator", "count", "cloud", "instance"]
    od = cheapest_by(t, keys, "price", mask)
    sp = cheapest_by(t, keys, "spot_price", mask)
    out = []
    for k in sorted(set(od) | set(sp), key=lambda k: (k[0].lower(), k[1], *k[2:])):
        row = {"accelerator": k[0], "count": k[1]}
        if name:
            row.update(cloud=k[2], instance=k[3])
        for label, src, col in (("on_demand", od, "price"), ("spot", sp, "spot_price")):
            i = src.get(k)
            row[label] = (
                None
                if i is None
                else {
                    "price": float(t[col][i]),
                    "cloud": t.text("cloud", i),
                    "region": t.text("region", i),
                    "instance": t.text("instance", i),
                }
            )
        s = accel.spec(k[0])
        row["memory_gb"] = s.memory_gb if s else None
        out.append(row)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    rows = []
    for r in out:
        od_, sp_ = r["on_demand"], r["spot"]
        cells = [r["accelerator"], f"{r['count']:g}", f"{r['memory_gb']:g} GB" if r["memory_gb"] else "?"]
        if name:
            cells += [r["cloud"], r["instance"]]
        cells += [
            render.money(od_["price"]) if od_ else "-",
            f"{od_['cloud']}/{od_['region']}" if od_ and not name else (od_["region"] if od_ else "-"),
            render.money(sp_["price"]) if sp_ else "-",
            f"{sp_['cloud']}/{sp_['region']}" if sp_ and not name else (sp_["region"] if sp_ else "-"),
        ]
        rows.append(cells)
    head = (
        ["accelerator", "count", "memory"]
        + (["cloud", "instance"] if name else [])
        + ["on-demand $/h", "where", "spot $/h", "where"]
    )
    click.echo(render.table(rows, head))
