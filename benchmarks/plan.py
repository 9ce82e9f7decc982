"""`spotrain plan` latency, cold and warm, over all shared catalogs, vs SkyPilot's
`sky.Optimizer.optimize` for the same requests in the same run; and catalog load/normalise
time and cache size.

Needs ../shared/data/skypilot-catalog and, for the SkyPilot side, SPOTRAIN_SKY_PYTHON
(a Python with skypilot==0.14.1; see requirements-sky.txt).

    python benchmarks/plan.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from _common import ROOT, table

CATALOGS = ROOT.parent / "shared" / "data" / "skypilot-catalog" / "v8"
REQUESTS = [
    ("A100", 8, False),
    ("H100", 1, True),
    ("L4", 1, False),
    ("T4", 1, True),
    ("A100-80GB", 1, False),
    ("V100", 1, False),
]
CLOUDS = ["AWS", "GCP", "Azure", "Lambda"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(SPOTRAIN_HOME=home, SPOTRAIN_CATALOG_DIR=str(CATALOGS), SKY_RUNTIME_DIR=home)
        from spotrain.pricing import catalog
        from spotrain.pricing.planner import plan
        from spotrain.recipes.schema import Recipe

        def recipe(acc, n, spot):
            return Recipe.model_validate(
                {
                    "name": "bench",
                    "data": {"sources": [{"type": "stdlib"}]},
                    "resources": {
                        "accelerators": [f"{acc}:{n}"],
                        "spot": spot,
                        "clouds": [c.lower() for c in CLOUDS],
                    },
                }
            )

        recipes = [recipe(*r) for r in REQUESTS]
        t0 = time.perf_counter()
        cold_cat = catalog.load(use_cache=False)
        load_cold = time.perf_counter() - t0
        plan(recipes[0], cold_cat.table)
        cold_total = time.perf_counter() - t0
        cache_bytes = cold_cat.cache_path.stat().st_size
        warm_loads, warm_plans, warm_totals = [], [], []
        for _ in range(a.repeat):
            for r in recipes:
                t1 = time.perf_counter()
                cat = catalog.load()
                t2 = time.perf_counter()
                plan(r, cat.table)
                t3 = time.perf_counter()
                warm_loads.append(t2 - t1)
                warm_plans.append(t3 - t2)
                warm_totals.append(t3 - t1)
        rows_total = len(cold_cat.table)

    sky_py = os.environ.get("SPOTRAIN_SKY_PYTHON")
    sky_cold = sky_warm = None
    if sky_py:
        spec = {
            "catalogs": str(CATALOGS),
            "clouds": CLOUDS,
            "repeat": a.repeat,
            "requests": [{"accelerator": x, "count": n, "spot": s, "cloud": None} for x, n, s in REQUESTS],
        }
        res = subprocess.run(
            [sky_py, str(ROOT / "tests" / "sky_reference.py")],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
        )
        out = json.loads(
            [l for l in res.stdout.splitlines() if l.startswith("SKYREF:")][-1][len("SKYREF:") :]
        )
        secs = [o["seconds"] for o in out if "seconds" in o]
        sky_cold, sky_warm = secs[0], statistics.median(secs[len(REQUESTS) :] or secs)

    ms = lambda s: f"{s * 1000:,.1f} ms"  # noqa: E731
    warm = statistics.median(warm_totals)
    rows = [
        ["spotrain plan (load + plan), cold", ms(cold_total), "-"],
        ["spotrain plan (load + plan), warm median", ms(warm), "goal <= 50 ms"],
        ["  of which catalog load (cache hit)", ms(statistics.median(warm_loads)), ""],
        ["  of which planning", ms(statistics.median(warm_plans)), ""],
    ]
    if sky_warm is not None:
        rows += [
            ["sky.Optimizer.optimize, first call", ms(sky_cold), "-"],
            [
                "sky.Optimizer.optimize, warm median",
                ms(sky_warm),
                f"spotrain is {sky_warm / warm:,.0f}x faster (goal >= 20x)",
            ],
        ]
    else:
        rows.append(["sky.Optimizer.optimize", "not measured", "set SPOTRAIN_SKY_PYTHON"])
    print(
        f"{len(REQUESTS)} requests x {a.repeat}, clouds {', '.join(CLOUDS)} (spotrain loads all "
        f"{rows_total:,} offers of 7 clouds)"
    )
    print(table(rows, ["what", "time", "note"]))
    print()
    print(
        table(
            [
                ["parse + normalise all catalogs (cold)", ms(load_cold)],
                ["load from cache (warm median)", ms(statistics.median(warm_loads))],
                ["cache size", f"{cache_bytes / 1e6:.1f} MB"],
                ["offers", f"{rows_total:,}"],
            ],
            ["catalog", "value"],
        )
    )


if __name__ == "__main__":
    main()
