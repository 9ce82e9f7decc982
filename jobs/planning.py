"""Which offers a job may use: the planner's ranking cut to the best spot and on-demand offers,
and — on the SkyPilot backend — the job's first task compiled and checked with SkyPilot. Used by
``spotrain launch`` and by scheduled runs alike, so both pick offers the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spotrain.pricing.offer import Offer


@dataclass
class Planned:
    offers: list[Offer]  # best first
    best: Offer  # the planner's cheapest by estimated cost (before a managed-job offer replaces the list)
    sky: dict | None = None  # SkyPilot backend: what every attempt needs (None on the local backend)
    prepared: object = None  # SkyPilot backend: the compiled first task (skypilot.Prepared)
    warnings: list[str] = field(default_factory=list)


def offers_for_job(candidates: list[Offer], per_kind: int = 10) -> list[Offer]:
    """The ranked offers a job may use: the best spot and on-demand ones, by estimated cost."""
    spot, od = [], []
    for c in candidates:  # best first: stop once both kinds are full (a ranking may hold 100k offers)
        kind = spot if c.spot else od
        if len(kind) < per_kind:
            kind.append(c)
        if len(spot) == len(od) == per_kind:
            break
    return sorted(spot + od, key=lambda c: (c.cost, c.hourly))


def plan_offers(
    loaded,
    backend: str,
    prices: Path | None = None,
    live: bool = True,
    dry_run: bool = False,
    trust_outliers: bool = False,
) -> Planned:
    """Price the recipe and pick the job's offers. With ``dry_run`` the SkyPilot task is compiled
    but not checked with SkyPilot (nothing is launched, no secret is needed)."""
    from spotrain.pricing.live import load_catalog
    from spotrain.pricing.planner import Options, plan

    cat, warnings = load_catalog(prices, live=live)
    p = plan(loaded.recipe, cat.table, loaded.base_dir, Options(trust_outliers=trust_outliers))
    offers = offers_for_job(p.candidates)
    out = Planned(offers, offers[0], warnings=warnings)
    if backend == "sky":
        from spotrain.launcher.backends import skypilot

        out.prepared = skypilot.prepare(loaded, offers, dry_run=dry_run)
        out.warnings += out.prepared.warnings
        if not dry_run:
            skypilot.preflight(out.prepared)
            out.sky = out.prepared.sky
            if out.sky["mode"] == "skypilot":
                out.offers = [skypilot.managed_offer(offers)]
    return out
