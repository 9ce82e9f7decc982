"""``spotrain plan``: the cheapest offers for a recipe, ranked by estimated job cost."""

from __future__ import annotations

import json
from pathlib import Path

import click

from spotrain.recipes.loader import load_recipe

from . import render
from .pricing_common import load_catalog, price_file_option, warn


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@click.argument("overrides", nargs=-1)
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True, help="Offers to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--mfu", type=click.FloatRange(0.01, 1.0), default=0.35, show_default=True, help="Assumed model FLOPs utilisation.")
@click.option("--no-live", is_flag=True, help="Do not fetch live AWS spot prices even with credentials.")
@price_file_option
def plan(file: str, overrides: tuple[str, ...], top: int, as_json: bool, mfu: float, no_live: bool, prices: Path | None) -> None:
    """Rank offers for recipe FILE by estimated job cost (spot preemptions included)."""
    from spotrain.pricing.planner import Options
    from spotrain.pricing.planner import plan as make_plan

    loaded = load_recipe(file, overrides)
    cat = load_catalog(prices, live=not no_live, quiet=as_json)
    p = make_plan(loaded.recipe, cat.table, loaded.base_dir, Options(mfu=mfu))
    shown = p.candidates[:top]
    if as_json:
        click.echo(json.dumps({
            "recipe": loaded.recipe.name, "params": p.workload.params, "flops_per_token": p.workload.flops_per_token,
            "memory_need_gb": round(p.memory_need_gb, 2), "mfu": mfu,
            "offers": [{**c.__dict__, "savings": c.savings} for c in shown],
            "funnel": [{"constraint": l, "before": b, "after": a} for l, b, a in p.funnel],
            "notes": p.notes,
        }, indent=2))
        return
    w = p.workload
    click.echo(f"{loaded.recipe.name}: {w.params / 1e6:,.1f}M parameters, {w.flops_per_token / 1e9:.2f} GFLOP per training token, "
               f"~{p.memory_need_gb:.1f} GB per accelerator; MFU assumed {mfu:.0%}, {loaded.recipe.resources.num_nodes} node(s)")
    rows = []
    for i, c in enumerate(shown, 1):
        gpu = f"{c.accelerator}:{c.count:g}" if c.accelerator else f"{c.vcpus:g} vCPU"
        rows.append([i, c.cloud, c.region, c.instance, gpu, "spot" if c.spot else "on-demand", render.money(c.hourly),
                     render.hours(c.hours), render.money(c.cost), render.money(c.on_demand_cost), f"{c.savings:.0%}" if c.spot else "-"])
    click.echo(render.table(rows, ["#", "cloud", "region", "instance", "accelerator", "purchase", "$/h", "est. time",
                                   "est. cost", "on-demand cost", "savings"], right={0, 6, 7, 8, 9, 10}))
    click.echo("constraints: " + "; ".join(f"{l}: {b:,} → {a:,}" for l, b, a in p.funnel))
    for n in p.notes:
        warn(n)
