"""The SkyPilot side of ``spotrain launch --backend sky``: compile, show (``--dry-run``), preflight."""

from __future__ import annotations

import os

import click
import yaml

from spotrain.errors import SpotrainError
from spotrain.launcher.compiler import cluster_name, compile_task, redacted, resolve_values, to_yaml
from spotrain.launcher.source import node_source

MANAGED_OFFERS = 5  # controller: skypilot — the planner's top offers SkyPilot may choose among


def node_recipe_text(loaded) -> str:
    """The recipe as the node runs it: what the user set (overrides applied), paths relative to its folder, no env/secrets."""
    node = loaded.recipe.model_dump(mode="json", by_alias=True, exclude_unset=True)
    node.pop("env", None)
    node.pop("secrets", None)
    return yaml.safe_dump(node, sort_keys=False)


def prepare(loaded, offers: list[dict], *, dry_run: bool) -> dict | None:
    """Compile the first task; print it for --dry-run (returns None), else preflight it and
    return what the job keeps for later attempts (secrets included, stored apart)."""
    r = loaded.recipe
    mode = r.recovery.controller
    env = resolve_values(r.env, os.environ, "env")
    secrets = resolve_values(r.secrets, os.environ, "secrets") if not dry_run else {k: v or "" for k, v in r.secrets.items()}
    source = node_source()
    chosen = offers if mode == "skypilot" else offers[:1]
    compiled = compile_task(r, node_recipe_text(loaded), chosen[:MANAGED_OFFERS], recipe_dir=str(loaded.base_dir), source=source,
                            task_name=cluster_name(r.name, None), run_id=f"{r.name}-dry-run" if dry_run else "job",
                            env=env, secrets=secrets, mode=mode)
    for w in compiled.warnings:
        click.echo(f"warning: {w}", err=True)
    if dry_run:
        click.echo(f"# SkyPilot task for {r.name} (controller: {mode}); secrets redacted. Nothing was launched.")
        if mode == "spotrain":
            click.echo("# Attempt 1 runs on the cheapest offer; later attempts get the same task on the offer the policy picks.")
        click.echo(to_yaml(redacted(compiled.config)), nl=False)
        return None
    from spotrain.launcher.backends.skypilot import Bridge, SkyError

    bridge = Bridge()
    try:
        bridge.call("validate", config=compiled.config)
        enabled = {c.lower() for c in bridge.call("enabled")["clouds"]}
        clouds = sorted({str(o["cloud"]).lower() for o in chosen})
        if not enabled & set(clouds):
            raise SpotrainError(f"SkyPilot has no cloud enabled among {', '.join(clouds)} (enabled: {', '.join(sorted(enabled)) or 'none'}) "
                                "— run `sky check` and set up credentials")
    except SkyError as exc:
        raise SpotrainError(str(exc)) from None
    finally:
        bridge.close()
    return {"source": source.__dict__, "env": env, "secrets": secrets, "mode": mode}


def managed_offer(offers: list[dict]) -> dict:
    """controller: skypilot — the job's single "offer": SkyPilot picks one of ``choices`` and may move
    between them on recovery, so spotrain's ledger bills at the dearest of them (the cap stays safe)
    and notes SkyPilot's own bill for comparison."""
    choices = offers[:MANAGED_OFFERS]
    top = max(choices, key=lambda o: o["hourly"])
    return {**top, "cloud": "skypilot", "region": "managed", "zone": "", "instance": f"any of {len(choices)} offers",
            "spot": any(o["spot"] for o in choices), "hourly": top["hourly"],
            "on_demand_hourly": max(o["on_demand_hourly"] for o in choices), "choices": choices}
