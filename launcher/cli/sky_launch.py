"""The SkyPilot side of ``spotrain launch --backend sky`` as the CLI shows it: warnings, and the
task YAML for ``--dry-run`` (the preparation and preflight live in the SkyPilot backend)."""

from __future__ import annotations

import click

from spotrain.launcher.backends.skypilot import Prepared
from spotrain.launcher.compiler import redacted, to_yaml


def show_dry_run(loaded, prepared: Prepared) -> None:
    r = loaded.recipe
    mode = prepared.sky["mode"]
    click.echo(f"# SkyPilot task for {r.name} (controller: {mode}); secrets redacted. Nothing was launched.")
    if mode == "spotrain":
        click.echo(
            "# Attempt 1 runs on the cheapest offer; later attempts get the same task on the offer the "
            "policy picks."
        )
    click.echo(to_yaml(redacted(prepared.compiled.config)), nl=False)
