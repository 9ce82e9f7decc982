"""``spotrain launch``: plan, ask, create the job, start its controller, stream progress."""

from __future__ import annotations

import time
from pathlib import Path

import click

from spotrain.errors import SpotrainError
from spotrain.recipes.loader import load_recipe

from . import render, sky_launch
from .jobs_cmd import print_cost, stream
from .pricing_common import price_file_option, warn


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@click.argument("overrides", nargs=-1)
@click.option(
    "--backend",
    type=click.Choice(["local", "sky"]),
    default="local",
    show_default=True,
    help=(
        "Where attempts run: `local` (this machine, billed at the offer's price) or `sky` (SkyPilot: real "
        "clouds, Slurm, Kubernetes)."
    ),
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="With --backend sky: print the SkyPilot task YAML (secrets redacted) and stop; nothing is launched.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before spending.")
@click.option("--detach", is_flag=True, help="Print the job id and return; the job runs on.")
@click.option(
    "--force",
    is_flag=True,
    help="Launch even if the cheapest estimate exceeds budget.max_cost (the cap still holds).",
)
@click.option(
    "--preempt-every",
    default=None,
    help="Local backend: inject spot preemptions at random, this often on average (e.g. 45s).",
)
@click.option(
    "--preempt-trace",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Local backend: replay a spot availability trace.",
)
@click.option(
    "--trace-speed", type=float, default=3600.0, show_default=True, help="Trace seconds per wall second."
)
@click.option(
    "--grace",
    default="120s",
    show_default=True,
    help="Local backend: SIGTERM → SIGKILL grace period of a preemption.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random preemptions.")
@click.option("--no-live", is_flag=True, help="Do not fetch live AWS spot prices.")
@click.option(
    "--trust-outliers", is_flag=True, help="Also consider suspect prices (see `spotrain catalog info`)."
)
@click.option(
    "--attempt-env",
    multiple=True,
    hidden=True,
    help="N:KEY=VALUE environment for attempt N (fault injection in tests).",
)
@price_file_option
def launch(
    file,
    overrides,
    backend,
    dry_run,
    yes,
    detach,
    force,
    preempt_every,
    preempt_trace,
    trace_speed,
    grace,
    seed,
    no_live,
    trust_outliers,
    attempt_env,
    prices,
) -> None:
    """Launch recipe FILE as a job on the cheapest fitting offer; survive preemptions; stop at the budget."""
    from spotrain.jobs import service
    from spotrain.jobs.preemption import load_trace
    from spotrain.units import parse_seconds

    loaded = load_recipe(file, overrides)
    r = loaded.recipe
    if dry_run and backend != "sky":
        raise SpotrainError("--dry-run shows the SkyPilot task — add --backend sky")
    if backend == "sky" and (preempt_every or preempt_trace):
        raise SpotrainError(
            "--preempt-every/--preempt-trace inject preemptions on the local backend only — real clouds "
            "preempt on their own"
        )
    options = {"grace": parse_seconds(grace), "seed": seed, "trace_speed": trace_speed}
    if preempt_every is not None:
        options["preempt_every"] = parse_seconds(preempt_every)
        if not options["preempt_every"] > 0:
            raise SpotrainError(
                f"--preempt-every {preempt_every}: the mean time between preemptions must be above 0 (e.g. "
                "45s); leave the option out for no preemptions"
            )
    for spec in attempt_env:
        n, _, kv = spec.partition(":")
        k, _, v = kv.partition("=")
        options.setdefault("attempt_env", {}).setdefault(n, {})[k] = v
    if preempt_trace:
        load_trace(preempt_trace)
        options["preempt_trace"] = str(preempt_trace.resolve())
    from spotrain.jobs.planning import plan_offers

    planned = plan_offers(
        loaded, backend, prices, live=not no_live, dry_run=dry_run, trust_outliers=trust_outliers
    )
    for w in planned.warnings:
        warn(w)
    if dry_run:
        sky_launch.show_dry_run(loaded, planned.prepared)
        return
    offers, best, sky = planned.offers, planned.best, planned.sky
    emulated = " — emulated on this machine at this offer's price" if backend == "local" else ""
    click.echo(
        f"plan: {best.cloud}/{best.region} {best.instance} ({best.machine}, "
        f"{'spot' if best.spot else 'on-demand'}) {render.money(best.hourly)}/h, est. "
        f"{render.hours(best.hours)}, est. cost {render.money(best.cost)}{emulated}"
    )
    if r.budget.max_cost is not None:
        from spotrain.jobs.limits import viable_cap

        click.echo(f"budget: {render.money(r.budget.max_cost)} for the whole job, recoveries included")
        if best.cost > r.budget.max_cost and not force:
            raise SpotrainError(
                f"the cheapest estimate {render.money(best.cost)} exceeds budget.max_cost "
                f"{render.money(r.budget.max_cost)} — raise the budget, change resources, or pass --force "
                "(the cap still stops the job)"
            )
        need = viable_cap(r, best, backend)
        if (
            r.budget.max_cost < need
        ):  # even with --force: it would pay for a start-up and a stop and train nothing
            raise SpotrainError(
                f"budget.max_cost {render.money(r.budget.max_cost)} cannot make progress: start-up, one "
                f"checkpoint interval and a graceful stop at {render.money(best.hourly)}/h cost "
                f"{render.money(need)} — raise budget.max_cost to at least that"
            )
    if not yes:
        click.confirm("launch and start spending?", abort=True)
    store = service.open_store()
    service.ensure_controllers(store)
    job_id = service.create(store, loaded, backend, offers, options, time.time(), sky=sky)
    service.start_controller(job_id)
    click.echo(
        f"job {job_id} launched ({r.name}); follow it with `spotrain status {job_id}`, `spotrain logs "
        f"{job_id} --follow`"
    )
    if detach:
        return
    status = stream(store, job_id)
    print_cost(store, job_id)
    raise click.exceptions.Exit(0 if status == "SUCCEEDED" else 1)
