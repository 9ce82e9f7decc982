"""``spotrain recipe validate|schema|show``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from spotrain.errors import RecipeError
from spotrain.recipes.loader import load_recipe, public_dump, recipe_to_yaml
from spotrain.recipes.schema import Recipe


@click.group()
def recipe() -> None:
    """Check, explain and resolve recipes."""


@recipe.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
def validate(files: tuple[str, ...]) -> None:
    """Report every problem of each recipe FILE (exit 0 when all are valid, 2 otherwise).

    Arguments of the form KEY=VALUE that are not files are overrides applied to every FILE.
    """
    overrides = [a for a in files if "=" in a and not Path(a).exists()]
    files = tuple(a for a in files if a not in overrides)
    if not files:
        raise click.UsageError("give at least one recipe FILE")
    bad = 0
    for f in files:
        try:
            loaded = load_recipe(f, overrides)
            sizes = _size_problems(loaded)
            if sizes:
                raise RecipeError([f"{f}: {'.'.join(p)}: {m}" for p, m in sizes])
        except RecipeError as exc:
            bad += 1
            for line in exc.lines:
                click.echo(line, err=True)
        else:
            click.echo(f"{f}: ok")
    if bad:
        click.echo(f"{bad} of {len(files)} recipe(s) invalid", err=True)
        raise click.exceptions.Exit(2)


def _size_problems(loaded) -> list[tuple[tuple, str]]:
    """A model no offer could hold, checked against the price catalog (skipped when it cannot load)."""
    from spotrain.errors import SpotrainError
    from spotrain.pricing import catalog
    from spotrain.pricing.planner import size_problems

    try:
        table = catalog.load().table
    except SpotrainError:
        return []
    return size_problems(loaded.recipe, table, loaded.base_dir)


@recipe.command()
def schema() -> None:
    """Print the recipe JSON Schema (point your editor's YAML plugin at it)."""
    doc = Recipe.model_json_schema(by_alias=True)
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "spotrain recipe"
    click.echo(json.dumps(doc, indent=2))


@recipe.command()
def docs() -> None:
    """Print the recipe field reference (Markdown table, generated from the schema)."""
    from spotrain.recipes.docs import reference_markdown

    click.echo(reference_markdown(), nl=False)


@recipe.command()
@click.argument("file", type=click.Path(path_type=str))
@click.argument("overrides", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show(file: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Print FILE fully resolved: defaults filled in, KEY=VALUE overrides applied, secrets redacted."""
    loaded = load_recipe(file, overrides)
    if as_json:
        click.echo(json.dumps(public_dump(loaded.recipe), indent=2))
    else:
        click.echo(recipe_to_yaml(loaded.recipe), nl=False)
