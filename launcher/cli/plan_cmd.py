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
@click.option(
    "--mfu",
    type=click.FloatRange(0.01, 1.0),
    default=0.35,
    show_default=True,
    help="Assumed model FLOPs utilisation.",
)
@click.option("--no-live", is_flag=True, help="Do not fetch live AWS spot prices even with credentials.")
@click.option(
    "--traces",
    "traces_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Spot traces for the forecasts (default: $SPOTRAIN_TRACES; else the default hazard model).",
)
@click.option(
    "--no-forecast",
    is_flag=True,
    help="Skip the simulated forecasts (expected/p90 cost, chance of meeting the deadline).",
)
@click.option(
    "--trust-outliers",
    is_flag=True,
    help="Rank prices far below the same machine's elsewhere too (flagged `!`; see `spotrain catalog info`).",
)
@price_file_option
def plan(
    file: str,
    overrides: tuple[str, ...],
    top: int,
    as_json: bool,
    mfu: float,
    no_live: bool,
    traces_path: Path | None,
    no_forecast: bool,
    trust_outliers: bool,
    prices: Path | None,
) -> None:
    """Rank offers for recipe FILE by estimated job cost (spot preemptions included)."""
    from spotrain.pricing.planner import Options
    from spotrain.pricing.planner import plan as make_plan

    loaded = load_recipe(file, overrides)
    cat = load_catalog(prices, live=not no_live, quiet=as_json)
    p = make_plan(loaded.recipe, cat.table, loaded.base_dir, Options(mfu=mfu, trust_outliers=trust_outliers))
    shown = p.candidates[:top]
    forecasts = [] if no_forecast else offer_forecasts(loaded.recipe, shown, traces_path)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "recipe": loaded.recipe.name,
                    "params": p.workload.params,
                    "flops_per_token": p.workload.flops_per_token,
                    "memory_need_gb": round(p.memory_need_gb, 2),
                    "mfu": mfu,
                    "offers": [
                        {
                            **c.to_json(),
                            "savings": c.savings,
                            **({"forecast": f.as_dict()} if forecasts else {}),
                        }
                        for c, f in zip(shown, forecasts or [None] * len(shown))
                    ],
                    "funnel": [{"constraint": l, "before": b, "after": a} for l, b, a in p.funnel],
                    "notes": p.notes,
                },
                indent=2,
            )
        )
        return
    w = p.workload
    click.echo(
        f"{loaded.recipe.name}: {w.params / 1e6:,.1f}M parameters, {w.flops_per_token / 1e9:.2f} GFLOP per "
        f"training token, ~{p.memory_need_gb:.1f} GB per accelerator; MFU assumed {mfu:.0%}, "
        f"{loaded.recipe.resources.num_nodes} node(s)"
    )
    rows = []
    for i, c in enumerate(shown, 1):
        row = [
            i,
            c.cloud,
            c.region,
            c.instance,
            c.machine,
            "spot" if c.spot else "on-demand",
            render.money(c.hourly) + ("!" if c.suspect else ""),
            render.hours(c.hours),
            render.money(c.cost),
            render.money(c.on_demand_cost),
            f"{c.savings:.0%}" if c.spot else "-",
        ]
        if forecasts:
            f = forecasts[i - 1]
            row += [
                render.money(f.expected_cost),
                render.money(f.p90_cost),
                "-" if f.p_meet_deadline is None else f"{f.p_meet_deadline:.0%}",
            ]
        rows.append(row)
    header = [
        "#",
        "cloud",
        "region",
        "instance",
        "accelerator",
        "purchase",
        "$/h",
        "est. time",
        "est. cost",
        "on-demand cost",
        "savings",
    ]
    if forecasts:
        header += ["forecast", "p90", "on time"]
    click.echo(render.table(rows, header, right={0, 6, 7, 8, 9, 10, 11, 12, 13}))
    if forecasts:
        sources = sorted({f.source for f in forecasts})
        click.echo(
            f"forecast: policy spotrain, {forecasts[0].samples} simulated runs per offer on "
            + "; ".join(sources)
        )
    if any(c.suspect for c in shown):
        click.echo(
            "!: a suspect price — far below the same machine's elsewhere (`spotrain catalog info` lists them)"
        )
    click.echo("constraints: " + "; ".join(f"{l}: {b:,} → {a:,}" for l, b, a in p.funnel))
    for n in p.notes:
        warn(n)


def offer_forecasts(recipe, candidates, traces_path: Path | None) -> list:
    """Expected and p90 cost and the chance of meeting the deadline for each candidate, by
    simulating the spotrain policy on traces that fit the offer, else on the hazard model."""
    import time as _time
    from datetime import datetime

    from spotrain.jobs import forecast
    from spotrain.pricing import estimate
    from spotrain.recipes.schema.budget import parse_duration

    deadline = recipe.budget.deadline
    if deadline is None:
        deadline_h = None
    elif isinstance(deadline, datetime):
        deadline_h = max((deadline.timestamp() - _time.time()) / 3600, 0.0)
    else:
        deadline_h = parse_duration(deadline).total_seconds() / 3600
    hazard = estimate.Hazard()
    root = forecast.traces_dir(traces_path)
    out = []
    for c in candidates:
        work_h = c.on_demand_cost / c.on_demand_hourly if c.on_demand_hourly else c.hours
        ck = estimate.checkpoint_interval_hours(recipe, work_h)
        if c.spot:
            market = forecast.trace_market(root, c.region, c.accelerator) or forecast.hazard_market(
                hazard, recipe.resources.num_nodes
            )
            out.append(
                forecast.forecast(
                    work_h, hazard.restart_hours, c.hourly, c.on_demand_hourly, market, deadline_h, ck
                )
            )
        else:
            cost = c.hourly * (work_h + hazard.restart_hours)
            met = None if deadline_h is None else float(work_h + hazard.restart_hours <= deadline_h)
            out.append(
                forecast.Forecast(
                    cost, cost, met, work_h + hazard.restart_hours, "on-demand: no preemptions", 1
                )
            )
    return out
