"""Data preparation throughput (MB/s of raw text in) on the tiny-gpt corpus: the full
pipeline, the same without near-dedup (its cost), and reading the prepared cache.

    python benchmarks/data_prep.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import ROOT, table

from spotrain.recipes.loader import load_recipe
from spotrain.recipes.runtime.data.prepare import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    import transformers  # noqa: F401 - keep import time out of the figures

    variants = [("full pipeline", []), ("without near-dedup", ["data.clean.near_dedup.enabled=false"])]
    rows = []
    for label, overrides in variants:
        best, mb, stats = None, 0.0, {}
        for _ in range(a.rounds):
            with tempfile.TemporaryDirectory() as cache:
                loaded = load_recipe(ROOT / "recipes" / "tiny-gpt.yaml", overrides)
                t0 = time.perf_counter()
                p = prepare(loaded, Path(cache))
                dt = time.perf_counter() - t0
                t1 = time.perf_counter()
                cached = prepare(loaded, Path(cache))
                dt_cached = time.perf_counter() - t1
                assert cached.cached
                stats = p.manifest["stats"]
                mb = stats["bytes_in"] / 1e6
                best = min(best or dt, dt)
        tokens = sum(s["tokens"] for s in p.manifest["splits"].values())
        rows.append(
            [
                label,
                f"{mb:.2f}",
                stats["documents_in"],
                stats["documents_out"],
                f"{tokens:,}",
                f"{best:.2f}",
                f"{mb / best:.2f}",
                f"{dt_cached * 1000:.0f} ms",
            ]
        )
    print(f"tiny-gpt corpus (Python standard library *.py), best of {a.rounds}")
    print(table(rows, ["variant", "MB in", "docs in", "docs out", "tokens", "seconds", "MB/s", "cache hit"]))


if __name__ == "__main__":
    main()
