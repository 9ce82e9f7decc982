"""The ``spotrain`` command: one click group, each subcommand group in its own module.

Errors a user can fix print one line and exit non-zero; tracebacks only with SPOTRAIN_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

import click

from spotrain import __version__
from spotrain.errors import SpotrainError

from . import (
    catalog_cmd,
    gpus_cmd,
    jobs_cmd,
    launch_cmd,
    plan_cmd,
    recipe_cmd,
    run_cmd,
    schedule_cmd,
    simulate_cmd,
    tui_cmd,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotrain")
def cli() -> None:
    """Train language models on the cheapest spot capacity without losing work or overspending."""


cli.add_command(recipe_cmd.recipe)
cli.add_command(run_cmd.run)
cli.add_command(plan_cmd.plan)
cli.add_command(gpus_cmd.gpus)
cli.add_command(catalog_cmd.catalog)
cli.add_command(launch_cmd.launch)
cli.add_command(simulate_cmd.simulate)
cli.add_command(tui_cmd.tui)
cli.add_command(schedule_cmd.schedule)
cli.add_command(schedule_cmd.scheduler)
for _cmd in (
    jobs_cmd.status,
    jobs_cmd.logs,
    jobs_cmd.cancel,
    jobs_cmd.preempt,
    jobs_cmd.events,
    jobs_cmd.cost,
    jobs_cmd.controller,
):
    cli.add_command(_cmd)


def debug_enabled() -> bool:
    return os.environ.get("SPOTRAIN_DEBUG", "") not in ("", "0", "false")


def main(argv: list[str] | None = None) -> None:
    try:
        rc = cli.main(args=argv, prog_name="spotrain", standalone_mode=False)
    except click.exceptions.Exit as exc:
        rc = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        rc = exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        rc = 130
    except SpotrainError as exc:
        if debug_enabled():
            raise
        click.echo(f"error: {exc}", err=True)
        rc = exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        rc = 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into one line
        if debug_enabled():
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(
            f"internal error: {type(exc).__name__}: {first} (set SPOTRAIN_DEBUG=1 for the traceback)",
            err=True,
        )
        rc = 1
    sys.exit(rc if isinstance(rc, int) else 0)
