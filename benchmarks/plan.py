"""Planner latency on the SkyPilot peer requests (tests/peer_requests.py) and on a CPU-only request
over every cloud, in process and as a whole `spotrain plan` process, beside SkyPilot's own
`sky.Optimizer.optimize` on the same requests and catalogs in the same run; and the catalog's load
time and cache size.

Needs ../shared/data/skypilot-catalog and, for the SkyPilot side, SPOTRAIN_SKY_PYTHON (a Python with
skypilot==0.14.1; see requirements-sky.txt). Goals (issue #20): ≤ 50 ms warm in process for every
request, ≤ 0.4 s for the whole process warm.

    python benchmarks/plan.py [--repeat 5] [--process-repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import ROOT, table

sys.path.insert(0, str(ROOT / "tests"))
from peer_requests import CLOUDS, REQUESTS  # noqa: E402

CATALOGS = ROOT.parent / "shared" / "data" / "skypilot-catalog" / "v8"
CPU_ALL = ("CPU only", 0, "auto", None, None)  # every cloud's CPU machines: the most rows to score


def overrides(req) -> list[str]:
    acc, n, spot, cloud, memory = req
    out = [f"resources.spot={str(spot).lower()}", f"resources.memory_gb={memory or 'null'}"]
    if acc == "CPU only":
        return out + ["resources.accelerators=[]", "resources.clouds=[]"]
    clouds = [cloud] if cloud else [c.lower() for c in CLOUDS]
    return out + [f"resources.accelerators=[{acc}:{n}]", f"resources.clouds=[{','.join(clouds)}]"]


def label(req) -> str:
    acc, n, spot, cloud, memory = req
    if acc == "CPU only":
        return "CPU only, all clouds"
    extra = "".join(f" {x}" for x in (cloud, f"{memory} GiB" if memory else None) if x)
    return f"{acc}:{n} {'spot' if spot is True else 'on-demand' if spot is False else 'auto'}{extra}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="in-process runs per request (median)")
    ap.add_argument("--process-repeat", type=int, default=3, help="whole-process runs per request (median)")
    a = ap.parse_args()
    requests = [*REQUESTS, CPU_ALL]
    with tempfile.TemporaryDirectory() as home:
        env = {"SPOTRAIN_HOME": home, "SPOTRAIN_CATALOG_DIR": str(CATALOGS), "SKY_RUNTIME_DIR": home}
        os.environ.update(env)
        from spotrain.pricing import catalog
        from spotrain.pricing.planner import PlanError, plan
        from spotrain.recipes.loader import load_recipe

        t0 = time.perf_counter()
        cold_cat = catalog.load(use_cache=False)
        load_cold = time.perf_counter() - t0
        cache_bytes = cold_cat.cache_path.stat().st_size
        loads, inproc = [], {}
        for req in requests:
            r = load_recipe(str(ROOT / "recipes" / "tiny-gpt.yaml"), overrides(req)).recipe
            times = []
            for _ in range(a.repeat + 1):  # the first run warms the caches
                t1 = time.perf_counter()
                cat = catalog.load()
                t2 = time.perf_counter()
                try:
                    plan(r, cat.table)
                except PlanError:
                    pass  # no offer: timed all the same
                times.append(time.perf_counter() - t2)
                loads.append(t2 - t1)
            inproc[req] = statistics.median(times[1:])
        process = {}
        for req in requests:
            cmd = [sys.executable, "-m", "spotrain", "plan", "recipes/tiny-gpt.yaml", *overrides(req)]
            cmd += ["--json", "--no-live", "--no-forecast"]
            times = []
            for _ in range(a.process_repeat):
                t1 = time.perf_counter()
                subprocess.run(cmd, cwd=ROOT, capture_output=True, env={**os.environ, **env})
                times.append(time.perf_counter() - t1)
            process[req] = statistics.median(times)

    sky_py = os.environ.get("SPOTRAIN_SKY_PYTHON")
    sky: dict = {}
    if sky_py:
        spec = {
            "catalogs": str(CATALOGS),
            "clouds": CLOUDS,
            "repeat": a.repeat + 1,
            "requests": [
                {"accelerator": x, "count": n, "spot": s, "cloud": c, "memory": m}
                for x, n, s, c, m in REQUESTS
            ],
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
        k = len(REQUESTS)
        for i, req in enumerate(REQUESTS):
            secs = [out[j * k + i].get("seconds") for j in range(1, a.repeat + 1)]  # the first round warms
            secs = [s for s in secs if s is not None]
            if secs:
                sky[req] = statistics.median(secs)

    ms = lambda s: f"{s * 1000:,.1f} ms"  # noqa: E731
    rows = []
    for req in requests:
        s = sky.get(req)
        rows.append(
            [
                label(req),
                ms(inproc[req]),
                ms(process[req]),
                ms(s) if s is not None else "-",
                f"{s / inproc[req]:,.0f}x" if s is not None else "-",
            ]
        )
    print(
        f"{len(requests)} requests; in process: median of {a.repeat} warm runs; "
        f"process: median of {a.process_repeat}"
    )
    print(
        table(
            rows,
            ["request", "spotrain in process", "spotrain process", "sky.Optimizer", "in-process speed-up"],
        )
    )
    print()
    summary = []
    for name, vals in (
        ("spotrain in process", list(inproc.values())),
        ("spotrain whole process", list(process.values())),
        ("sky.Optimizer.optimize", list(sky.values())),
    ):
        if vals:
            summary.append([name, ms(statistics.median(vals)), ms(max(vals))])
    print(table(summary, ["", "median", "max"]))
    print("goals: in process <= 50 ms for every request; whole process <= 400 ms warm")
    if not sky:
        print("sky.Optimizer not measured: set SPOTRAIN_SKY_PYTHON")
    print()
    print(
        table(
            [
                ["parse + normalise all catalogs (cold)", ms(load_cold)],
                ["load from cache (warm median)", ms(statistics.median(loads))],
                ["cache size", f"{cache_bytes / 1e6:.1f} MB"],
                ["offers", f"{len(cold_cat.table):,}"],
            ],
            ["catalog", "value"],
        )
    )


if __name__ == "__main__":
    main()
