"""``spotrain serve``: a finished run's model behind an OpenAI-compatible API, in the foreground."""

from __future__ import annotations

import os
from pathlib import Path

import click

from spotrain.errors import SpotrainError


def model_folder(target: str) -> tuple[Path, dict]:
    """(run folder, its resolved recipe as a dict) for a run folder or a job id."""
    import yaml

    path = Path(target)
    if not path.exists() and target.isdigit():
        from spotrain.jobs.service import open_store

        job = open_store().job(int(target))
        runs = sorted(
            (Path(job.workdir) / "attempts").glob("*/model/config.json"), key=lambda p: int(p.parts[-3])
        )
        if not runs:
            raise SpotrainError(
                f"job {target} has no finished model yet (status {job.status}) — serve it once it SUCCEEDED"
            )
        path = runs[-1].parent.parent
    if not (path / "model" / "config.json").is_file():
        raise SpotrainError(
            f"{target}: no model/ here — serve the folder of a finished `spotrain run` or a job id"
        )
    try:
        recipe = yaml.safe_load((path / "recipe.yaml").read_text())
    except (OSError, yaml.YAMLError):
        recipe = None
    return path, recipe if isinstance(recipe, dict) else {"name": path.name}


def deploy_settings(recipe: dict, environ) -> tuple[dict, list[str]]:
    """The recipe's ``deploy.limits`` (defaults where it has none) and the API keys: the values of
    the environment variables ``deploy.api_keys`` names, and those of ``SPOTRAIN_API_KEYS``."""
    from spotrain.recipes.schema.deploy import Deploy

    deploy = Deploy.model_validate(recipe.get("deploy") or {})
    keys = [k.strip() for k in environ.get("SPOTRAIN_API_KEYS", "").split(",") if k.strip()]
    missing = [n for n in deploy.api_keys if not environ.get(n)]
    if missing:
        raise SpotrainError(
            f"deploy.api_keys names {', '.join(missing)}, not set in this shell — export the key(s), "
            "or set SPOTRAIN_API_KEYS"
        )
    keys += [environ[n] for n in deploy.api_keys]
    return deploy.limits.model_dump(), keys


@click.command()
@click.argument("target", metavar="RUN_DIR|JOB")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--max-batch",
    type=click.IntRange(1, 256),
    default=None,
    help="Requests decoded together [deploy.limits: 16].",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1),
    default=None,
    help="Requests in flight; more get 429 [deploy.limits: 64].",
)
@click.option("--max-new-tokens", type=click.IntRange(1), default=None, help="[deploy.limits: 512]")
@click.option("--max-prompt-tokens", type=click.IntRange(1), default=None, help="[deploy.limits: 2048]")
@click.option(
    "--rate-limit",
    type=click.IntRange(0),
    default=None,
    help="Requests a minute per API key [deploy.limits: 0, none].",
)
@click.option("--threads", type=click.IntRange(1), default=None, help="torch threads (default: torch's).")
def serve(
    target, host, port, max_batch, max_concurrency, max_new_tokens, max_prompt_tokens, rate_limit, threads
):
    """Serve a finished run's model (RUN_DIR, or a job id) as an OpenAI-compatible API: /v1/completions,
    /v1/chat/completions (with a chat template), /v1/models, /health, /metrics. Limits and API keys come
    from the recipe's `deploy` section (keys: the environment variables deploy.api_keys names) and the
    comma-separated SPOTRAIN_API_KEYS; flags override limits. Keys are never logged."""
    from spotrain.recipes.schema.deploy import Deploy  # noqa: F401 - a bad deploy section fails before torch loads

    path, recipe = model_folder(target)
    try:
        lim, keys = deploy_settings(recipe, os.environ)
    except ValueError as exc:  # pydantic: the run's deploy section is invalid
        raise SpotrainError(f"{path / 'recipe.yaml'}: deploy: {str(exc).splitlines()[0]}") from None
    given = {
        "max_batch": max_batch,
        "max_concurrency": max_concurrency,
        "max_new_tokens": max_new_tokens,
        "max_prompt_tokens": max_prompt_tokens,
        "rate_limit_per_minute": rate_limit,
    }
    lim.update({k: v for k, v in given.items() if v is not None})
    import uvicorn

    from spotrain.serving.api import Limits, create_app
    from spotrain.serving.engine import Engine

    model_id = str(recipe.get("name") or path.name)
    engine = Engine(path / "model", max_batch=lim.pop("max_batch"), threads=threads)
    app = create_app(engine, model_id, keys, Limits(**lim))
    click.echo(
        f"serving {model_id} from {path} on http://{host}:{port}/v1 "
        f"({'API keys required' if keys else 'no API keys: anyone on this address may call it'})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
