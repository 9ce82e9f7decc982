"""Glue between the CLI and the job machinery: launch a job, start or adopt controllers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from spotrain.paths import heartbeat_stale_s
from spotrain.pricing.offer import Offer
from spotrain.pricing.catalog import spotrain_home
from spotrain.recipes.loader import LoadedRecipe, absolute_recipe, public_dump
from spotrain.recipes.schema.budget import parse_duration

from .db import connect
from .store import Store


def open_store() -> Store:
    return Store(connect())


def job_dir(job_id: int) -> Path:
    return spotrain_home() / "jobs" / str(job_id)


def deadline_ts(deadline, now: float) -> float | None:
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        return deadline.timestamp()
    return now + parse_duration(deadline).total_seconds()


def write_sky_files(d: Path, loaded: LoadedRecipe, sky: dict) -> None:
    """What the SkyPilot backend needs for every attempt: the recipe as the node sees it (relative
    paths, overrides applied, no env/secrets), how to install spotrain there, resolved env, and the
    secrets — in a file only the owner can read, never in the database or a log."""
    from spotrain.launcher.compiler import node_recipe_text

    (d / "recipe.node.yaml").write_text(node_recipe_text(loaded))
    secrets = sky.pop("secrets", {})
    f = d / "secrets.json"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(secrets, fh)
    (d / "sky.json").write_text(json.dumps({"recipe_dir": str(loaded.base_dir), **sky}))


def create(
    store: Store,
    loaded: LoadedRecipe,
    backend: str,
    offers: list[Offer],
    options: dict,
    now: float,
    sky: dict | None = None,
) -> int:
    recipe = absolute_recipe(loaded)
    job_id = store.create_job(
        name=recipe.name,
        backend=backend,
        recipe_yaml="",
        recipe_dir=str(loaded.base_dir),
        offers=offers,
        options=options,
        workdir="",
        max_cost=recipe.budget.max_cost,
        deadline=deadline_ts(recipe.budget.deadline, now),
        now=now,
    )
    d = job_dir(job_id)
    d.mkdir(parents=True, exist_ok=True)
    data = public_dump(recipe)  # secret values live only in secrets.json (0600)
    if sky is not None:
        write_sky_files(d, loaded, sky)
    elif not recipe.storage.remote():
        data["storage"]["checkpoints"] = str(
            d / "checkpoints"
        )  # shared by every attempt (the local "bucket")
    text = yaml.safe_dump(data, sort_keys=False)
    (d / "recipe.yaml").write_text(text)
    store.set_job_files(job_id, recipe_yaml=text, workdir=str(d))
    return job_id


def start_controller(job_id: int) -> int:
    """Start the job's controller as a detached process (it outlives this CLI)."""
    d = job_dir(job_id)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "controller.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spotrain", "_controller", str(job_id)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ.copy(),
        )
    return proc.pid


def unwatched(job, now: float) -> bool:
    """An unfinished job whose controller stopped heartbeating (its spend is billed up to the last beat)."""
    from .states import JobStatus

    if JobStatus(job.status).is_terminal():
        return False
    if job.heartbeat is None:
        return now - job.created >= heartbeat_stale_s()
    return now - job.heartbeat > heartbeat_stale_s()


def ensure_controllers(store: Store, now: float | None = None) -> list[int]:
    """Adopt every unfinished job whose controller stopped heartbeating. Returns the job ids."""
    now = time.time() if now is None else now
    adopted = []
    for job in store.jobs():
        if unwatched(job, now):  # (a job whose first controller is still starting is not)
            start_controller(job.id)
            store.event(
                job.id,
                "restart",
                "controller not heartbeating; started a new one (it adopts the job if no other did)",
                now,
            )
            adopted.append(job.id)
    return adopted
