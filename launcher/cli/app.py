"""The ``spotrain`` command: one click group, each subcommand group in its own module.

Errors a user can fix print one line and exit non-zero; tracebacks only with SPOTRAIN_DEBUG=1.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from spotrain import __version__
from spotrain.errors import SpotrainError

# command → "module:attribute"; a command's module (and what it imports: torch, numpy, pydantic,
# SkyPilot's bridge...) is imported only when that command runs, so `spotrain plan` pays for the
# planner and not for the trainer
COMMANDS = {
    "recipe": "recipe_cmd:recipe",
    "run": "run_cmd:run",
    "serve": "serve_cmd:serve",
    "plan": "plan_cmd:plan",
    "gpus": "gpus_cmd:gpus",
    "catalog": "catalog_cmd:catalog",
    "launch": "launch_cmd:launch",
    "simulate": "simulate_cmd:simulate",
    "tui": "tui_cmd:tui",
    "schedule": "schedule_cmd:schedule",
    "scheduler": "schedule_cmd:scheduler",
    "status": "jobs_cmd:status",
    "logs": "jobs_cmd:logs",
    "cancel": "jobs_cmd:cancel",
    "preempt": "jobs_cmd:preempt",
    "events": "jobs_cmd:events",
    "cost": "jobs_cmd:cost",
    "_controller": "jobs_cmd:controller",  # hidden: what a job's controller process runs
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spotrain")
def cli() -> None:
    """Train language models on the cheapest spot capacity without losing work or overspending."""


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
