"""``spotrain run``: run a whole recipe on this machine, in the foreground (node-side runtime)."""

from __future__ import annotations

from pathlib import Path

import click

from spotrain.recipes.loader import load_recipe


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@click.argument("overrides", nargs=-1)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (checkpoints, events, reports). Default: runs/<recipe name>. Rerunning resumes.")
def run(file: str, overrides: tuple[str, ...], workdir: Path | None) -> None:
    """Prepare data, train, checkpoint and evaluate recipe FILE here; rerun to resume."""
    from spotrain.recipes.runtime.run import run_recipe  # heavy imports (torch) only when running

    loaded = load_recipe(file, overrides)
    rc = run_recipe(loaded, workdir or Path("runs") / loaded.recipe.name)
    raise click.exceptions.Exit(rc)
