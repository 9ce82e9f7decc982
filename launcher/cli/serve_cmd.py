"""``spotrain serve``: a finished run's model behind an OpenAI-compatible API, in the foreground."""

from __future__ import annotations

import os
from pathlib import Path

import click

from spotrain.errors import SpotrainError


def model_folder(target: str) -> tuple[Path, str]:
    """(run folder, model id) for a run folder or a job id: the run's ``model/`` and its recipe's name."""
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
        name = yaml.safe_load((path / "recipe.yaml").read_text())["name"]
    except (OSError, TypeError, KeyError, yaml.YAMLError):
        name = path.name
    return path, str(name)


@click.command()
@click.argument("target", metavar="RUN_DIR|JOB")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--max-batch",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Requests decoded together.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Requests in flight; more are answered 429.",
)
@click.option("--max-new-tokens", type=click.IntRange(1), default=512, show_default=True)
@click.option("--max-prompt-tokens", type=click.IntRange(1), default=2048, show_default=True)
@click.option(
    "--rate-limit",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Requests a minute per API key (0: none).",
)
@click.option("--threads", type=click.IntRange(1), default=None, help="torch threads (default: torch's).")
def serve(
    target, host, port, max_batch, max_concurrency, max_new_tokens, max_prompt_tokens, rate_limit, threads
):
    """Serve a finished run's model (RUN_DIR, or a job id) as an OpenAI-compatible API: /v1/completions,
    /v1/chat/completions (with a chat template), /v1/models, /health, /metrics. API keys: the
    comma-separated SPOTRAIN_API_KEYS (none: no auth; keys are never logged)."""
    path, model_id = model_folder(target)
    import uvicorn

    from spotrain.serving.api import Limits, create_app
    from spotrain.serving.engine import Engine

    keys = [k.strip() for k in os.environ.get("SPOTRAIN_API_KEYS", "").split(",") if k.strip()]
    engine = Engine(path / "model", max_batch=max_batch, threads=threads)
    limits = Limits(
        max_prompt_tokens=max_prompt_tokens,
        max_new_tokens=max_new_tokens,
        max_concurrency=max_concurrency,
        rate_limit_per_minute=rate_limit,
    )
    app = create_app(engine, model_id, keys, limits)
    click.echo(
        f"serving {model_id} from {path} on http://{host}:{port}/v1 "
        f"({'API keys required' if keys else 'no API keys: anyone on this address may call it'})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
