"""Peer check: spotrain's cheapest $/h choice agrees with the real SkyPilot optimizer on the
shared catalogs, or the difference has a documented, checked reason.

Needs SkyPilot in its own venv ($SPOTRAIN_SKY_PYTHON; .ci/run builds it from
requirements-sky.txt) and ../shared/data/skypilot-catalog; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED, tiny_recipe
from spotrain.pricing.planner import PlanError, plan
from spotrain.pricing.sources import skypilot
from spotrain.pricing.table import OfferTable
from spotrain.recipes.schema import Recipe

CATALOGS = SHARED / "data" / "skypilot-catalog" / "v8"
SKY_PY = os.environ.get("SPOTRAIN_SKY_PYTHON", "")
CLOUDS = ["AWS", "GCP", "Azure", "Lambda"]

pytestmark = pytest.mark.skipif(
    not (SKY_PY and Path(SKY_PY).exists() and CATALOGS.is_dir()),
    reason="needs SPOTRAIN_SKY_PYTHON (SkyPilot venv) and ../shared/data/skypilot-catalog",
)

REQUESTS = [
    (a, n, spot, cloud)
    for a, n, spot, cloud in [
        ("A100", 1, False, None),
        ("A100", 8, False, None),
        ("A100", 1, True, None),
        ("A100", 8, True, None),
        ("A100-80GB", 1, False, None),
        ("A100-80GB", 8, False, None),
        ("A100-80GB", 1, True, None),
        ("H100", 1, False, None),
        ("H100", 8, False, None),
        ("H100", 8, True, None),
        ("H100", 1, True, "aws"),
        ("L4", 1, False, None),
        ("L4", 1, True, None),
        ("L4", 4, False, None),
        ("L4", 1, False, "gcp"),
        ("V100", 1, False, None),
        ("V100", 1, True, None),
        ("T4", 1, False, None),
        ("T4", 1, True, None),
        ("L40S", 1, False, None),
        ("A10", 1, False, None),
        ("H200", 8, False, None),
        ("B200", 8, False, None),
        ("A100", 8, False, "lambda"),
    ]
]


@pytest.fixture(scope="module")
def sky_choices():
    spec = {
        "catalogs": str(CATALOGS),
        "clouds": CLOUDS,
        "requests": [{"accelerator": a, "count": n, "spot": s, "cloud": c} for a, n, s, c in REQUESTS],
    }
    res = subprocess.run(
        [SKY_PY, str(Path(__file__).parent / "sky_reference.py")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads([l for l in res.stdout.splitlines() if l.startswith("SKYREF:")][-1][len("SKYREF:") :])


@pytest.fixture(scope="module")
def table():
    rows = []
    for cloud in ("aws", "gcp", "azure", "lambda"):
        rows += skypilot.read_cloud(CATALOGS / cloud / "vms.csv", cloud, 0).rows
    return OfferTable.from_rows(rows)


def raw_rows(cloud: str, instance: str) -> list[dict]:
    import csv

    with open(CATALOGS / cloud / "vms.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["InstanceType"] == instance]


def spot_at_or_above_on_demand(sky) -> bool:
    rows = raw_rows(sky["cloud"], sky["instance"])
    return any(
        r.get("SpotPrice") and float(r["SpotPrice"]) >= float(r["Price"]) for r in rows if r.get("Price")
    )


def explain(req, ours, sky, table) -> str | None:
    """Why a difference is expected, or None when it is not explained."""
    acc, n, spot, cloud = req
    if sky.get("error"):
        return None
    if ours is None:
        if spot and sky["spot"] and spot_at_or_above_on_demand(sky):
            return (
                "SkyPilot takes a spot price at or above on-demand at face value; spotrain treats it as no "
                "spot offer"
            )
        return None
    if ours.hourly < sky["hourly"] - 1e-9:
        # SkyPilot prices only one instance type per cloud (its cheapest catalog row), then its regions
        if ours.cloud != sky["cloud"] or ours.instance != sky["instance"]:
            return "spotrain considers every instance type; SkyPilot one per cloud"
        # same type: SkyPilot's region choice for spot takes zone prices; ours takes the cheapest zone too
        return None
    if ours.hourly > sky["hourly"] + 1e-9 and spot and sky["spot"] and spot_at_or_above_on_demand(sky):
        return (
            "SkyPilot takes a spot price at or above on-demand at face value; spotrain treats it as no spot "
            "offer"
        )
    return None


@pytest.mark.slow(80)
def test_agrees_with_skypilot_optimizer(sky_choices, table):
    agreed, explained, problems = 0, [], []
    assert len(sky_choices) == len(REQUESTS)
    for req, sky in zip(REQUESTS, sky_choices):
        acc, n, spot, cloud = req
        r = Recipe.model_validate(
            tiny_recipe(
                resources={
                    "accelerators": [f"{acc}:{n}"],
                    "spot": spot,
                    "clouds": [cloud] if cloud else [c.lower() for c in CLOUDS],
                }
            )
        )
        try:
            ours = min(plan(r, table).candidates, key=lambda c: (c.hourly, c.cloud, c.region))
        except PlanError as exc:
            if sky.get("error"):
                agreed += 1  # neither finds an offer
                continue
            why = explain(req, None, sky, table)
            if why:
                explained.append((req, why))
            else:
                problems.append(f"{req}: spotrain found nothing ({exc}); SkyPilot chose {sky}")
            continue
        if sky.get("error"):
            problems.append(
                f"{req}: SkyPilot found nothing ({sky['error']}); spotrain chose "
                f"{ours.cloud}/{ours.instance} ${ours.hourly:.4f}"
            )
            continue
        if abs(ours.hourly - sky["hourly"]) < 1e-6:
            agreed += 1
            continue
        why = explain(req, ours, sky, table)
        if why:
            explained.append((req, why))
        else:
            problems.append(
                f"{req}: spotrain {ours.cloud}/{ours.region}/{ours.instance} ${ours.hourly:.4f} vs SkyPilot "
                f"{sky['cloud']}/{sky['region']}/{sky['instance']} ${sky['hourly']:.4f}"
            )
    print(f"\nagreed {agreed}/{len(REQUESTS)}; explained differences: {explained}")
    assert not problems, "\n".join(problems)
    assert len(REQUESTS) >= 20 and agreed >= len(REQUESTS) // 2
