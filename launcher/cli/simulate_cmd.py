"""``spotrain simulate``: replay spot availability traces under each policy and compare costs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from spotrain.errors import SpotrainError

from . import render

ALL_POLICIES = ("on-demand", "greedy", "uniform-progress", "eager-next-region", "spotrain", "optimal")


def _hours_list(text: str, what: str, positive: bool = True) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SpotrainError(f"{what} {text!r}: write hours separated by commas, e.g. 52,70,92") from None
    if not vals or any(v < 0 or (positive and v == 0) for v in vals):
        raise SpotrainError(
            f"{what} {text!r}: every value must be {'positive' if positive else 'zero or more'} hours"
        )
    return vals


@click.command()
@click.option(
    "--traces",
    "traces_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="A trace file or a folder of them (Can't Be Late format), searched recursively.",
)
@click.option(
    "--multi-zone",
    is_flag=True,
    help="Each folder is one scenario whose files are its zones (default: each file is one).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help=f"Policy to run (repeatable). Default: all of {', '.join(ALL_POLICIES)}.",
)
@click.option(
    "--work-hours",
    type=click.FloatRange(min=0, min_open=True),
    default=48.0,
    show_default=True,
    help="Work the job needs.",
)
@click.option(
    "--deadline-hours", default="52,70,92", show_default=True, help="Deadlines to simulate, comma-separated."
)
@click.option(
    "--overhead-hours", default="0.02,0.1,0.4", show_default=True, help="Restart overheads, comma-separated."
)
@click.option(
    "--on-demand-price",
    type=click.FloatRange(min=0, min_open=True),
    default=3.06,
    show_default=True,
    help="$/h.",
)
@click.option(
    "--spot-price",
    type=click.FloatRange(min=0, min_open=True),
    default=0.9731,
    show_default=True,
    help="$/h where a trace carries no prices.",
)
@click.option("--ignore-trace-prices", is_flag=True, help="Use --spot-price even where a trace has prices.")
@click.option(
    "--checkpoint-hours",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=(
        "Checkpoint interval: a preemption then also loses the work since the last one (default: only the "
        "overhead)."
    ),
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Instances the job needs at once.",
)
@click.option(
    "--starts",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Random start offsets per scenario.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--start-ticks",
    default=None,
    help="Run exactly these start offsets (trace ticks, comma-separated) in every scenario "
    "and setting, instead of --starts random ones.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: all CPUs).")
@click.option("--json", "as_json", is_flag=True, help="Print {summary, runs} as JSON.")
def simulate(
    traces_dir: Path,
    multi_zone: bool,
    policies: tuple[str, ...],
    work_hours: float,
    deadline_hours: str,
    overhead_hours: str,
    on_demand_price: float,
    spot_price: float,
    ignore_trace_prices: bool,
    checkpoint_hours: float | None,
    nodes: int,
    starts: int,
    seed: int,
    start_ticks: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Replay spot traces tick by tick: cost, deadline misses and gap to the omniscient optimum per policy."""
    from spotrain.jobs import sweep, traces
    from spotrain.jobs.policies import REGISTRY

    deadlines = _hours_list(deadline_hours, "--deadline-hours")
    overheads = _hours_list(overhead_hours, "--overhead-hours", positive=False)
    for name in policies:
        if name not in REGISTRY or name == "policy":
            raise SpotrainError(f"unknown policy {name!r}: choose from {', '.join(ALL_POLICIES)}")
    for d in deadlines:
        if d < work_hours:
            raise SpotrainError(
                f"--deadline-hours {d:g} is shorter than --work-hours {work_hours:g}: no policy could finish"
            )
    ticks = None
    if start_ticks is not None:
        try:
            ticks = tuple(int(x) for x in start_ticks.split(",") if x.strip())
        except ValueError:
            raise SpotrainError(
                f"--start-ticks {start_ticks!r}: give whole trace ticks, comma-separated (e.g. 0,120,4000)"
            ) from None
        if not ticks or min(ticks) < 0:
            raise SpotrainError(
                f"--start-ticks {start_ticks!r}: give whole trace ticks ≥ 0, comma-separated (e.g. "
                "0,120,4000)"
            )
        starts = len(ticks)
    scenarios = traces.load_scenarios(traces_dir, multi_zone=multi_zone)
    grid = sweep.Grid(
        policies=policies or ALL_POLICIES,
        work_h=work_hours,
        deadlines_h=deadlines,
        overheads_h=overheads,
        od_price=on_demand_price,
        spot_price=spot_price,
        checkpoint_h=checkpoint_hours,
        nodes=nodes,
        starts=starts,
        seed=seed,
        trace_prices=not ignore_trace_prices,
        start_ticks=ticks,
    )
    runs = sweep.run(scenarios, grid, workers=workers or os.cpu_count() or 1)
    summary = sweep.summarize(runs)
    if as_json:
        click.echo(json.dumps({"summary": summary, "runs": runs}, allow_nan=False))
        return
    zones = sum(len(s.zones) for s in scenarios)
    click.echo(
        f"{len(scenarios)} scenario(s), {zones} zone(s), {starts} start(s) each; {work_hours:g} h of work, "
        f"on-demand ${on_demand_price:g}/h, spot ${spot_price:g}/h"
        + ("" if ignore_trace_prices else " (or the trace's prices)")
    )
    for d in deadlines:
        for oh in overheads:

            def num(x):
                return "-" if x is None else f"{x:.3f}"

            rows = [
                [
                    s["policy"],
                    s["runs"],
                    num(s["mean_cost_ratio"]),
                    num(s["p95_cost_ratio"]),
                    f"{s['miss_rate']:.1%}",
                    "-" if s["mean_gap_to_optimal"] is None else f"{s['mean_gap_to_optimal']:.1%}",
                ]
                for s in summary
                if s["deadline_hours"] == d and s["overhead_hours"] == oh
            ]
            click.echo(f"\ndeadline {d:g} h, restart overhead {oh:g} h")
            click.echo(
                render.table(
                    rows,
                    ["policy", "runs", "mean cost ratio", "p95 cost ratio", "miss rate", "gap to optimal"],
                    right={1, 2, 3, 4, 5},
                )
            )
    click.echo("\ncost ratio: cost / cost of on-demand for the whole job; gap: (cost − optimal) / optimal")
