"""Rank offers for a recipe by estimated job cost (not $/h alone), explaining what each
constraint removed. Pure: the offer table, the recipe and the options come in; a Plan comes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spotrain.errors import SpotrainError
from spotrain.recipes.schema import Recipe
from spotrain.recipes.schema.resources import parse_accelerator

from . import accelerators as accel
from . import estimate
from .offer import Offer
from .table import OfferTable


CPU_FLOPS_PER_VCPU = 50e9  # fp32 FMA throughput of one modern x86 vCPU (AVX2/AVX-512), for CPU-only plans


class PlanError(SpotrainError):
    pass


@dataclass(frozen=True)
class Options:
    mfu: float = estimate.DEFAULT_MFU
    hazard: estimate.Hazard = estimate.Hazard()


@dataclass
class Plan:
    candidates: list[Offer]  # ranked, each with its estimate
    funnel: list[tuple[str, int, int]]  # (constraint, before, after)
    workload: estimate.Workload
    memory_need_gb: float
    considered: int
    notes: list[str] = field(default_factory=list)


def resolve_accelerators(specs: list[str], known: set[str]) -> list[tuple[str, int]]:
    out = []
    for s in specs:
        name, count = parse_accelerator(s)
        canon = accel.canonical(name, known)
        if canon is None:
            hint = accel.suggest(name, known)
            raise PlanError(
                f"unknown accelerator {name!r}"
                + (f" — did you mean {' or '.join(hint)}?" if hint else " — see `spotrain gpus` for names")
            )
        out.append((canon, count))
    return out


def size_problems(recipe: Recipe, table: OfferTable, base_dir: Path = Path(".")) -> list[tuple[tuple, str]]:
    """Sizes no offer of any cloud can run, whatever the other constraints: the per-device memory
    training needs against the largest memory an offer of the requested kind has (GPU memory for
    accelerator recipes, RAM for CPU-only ones). As (field path, message) pairs, like the schema's."""
    w = estimate.workload(recipe, base_dir)
    need = estimate.memory_need_gb(w, recipe)
    if recipe.resources.accelerators:
        mems = [
            (accel.spec(a).memory_gb, a) for a in table.labels["accelerator"].tolist() if a and accel.spec(a)
        ]
        unit = "per accelerator"
    else:
        need = need - estimate.CUDA_OVERHEAD_GB + estimate.CPU_RUNTIME_GB
        cpu = table.isin("accelerator", {""}) & ~np.isnan(table["memory_gb"])
        mems = [(float(table["memory_gb"][i]), table.text("instance", int(i))) for i in np.flatnonzero(cpu)]
        unit = "of RAM"
    if not mems:
        return []
    most, where = max(mems)
    if need <= most:
        return []
    return [
        (
            ("model",),
            f"training needs ~{need:,.0f} GB {unit} ({w.params:,} parameters) but the largest any offer has "
            f"is {most:,.0f} GB ({where}) — make the model smaller (model.hidden, model.layers) or lower "
            "train.batch_size / data.seq_len",
        )
    ]


def plan(recipe: Recipe, table: OfferTable, base_dir: Path = Path("."), opts: Options = Options()) -> Plan:
    res, bud = recipe.resources, recipe.budget
    nodes = res.num_nodes
    known = set(table.labels["accelerator"].tolist()) - {""}
    wanted = resolve_accelerators(res.accelerators, known)
    w = estimate.workload(recipe, base_dir)
    need = estimate.memory_need_gb(w, recipe)
    funnel: list[tuple[str, int, int]] = []
    n = len(table)
    mask = np.ones(n, dtype=bool)

    def step(label: str, keep: np.ndarray) -> None:
        nonlocal mask
        before = int(mask.sum())
        mask &= keep
        funnel.append((label, before, int(mask.sum())))

    cnt = table["count"]
    if wanted:
        m = np.zeros(n, dtype=bool)
        for name, count in wanted:
            m |= table.isin("accelerator", {name}) & (cnt == count)
        step("accelerators " + ", ".join(f"{a}:{c}" for a, c in wanted), m)
        step(
            "runtime needs CUDA GPUs (no TPU support yet)",
            ~table.match("accelerator", lambda a: a.lower().startswith("tpu-")),
        )
    else:
        step("CPU only (resources.accelerators is empty)", table.isin("accelerator", {""}))
    step("clouds", table.glob("cloud", res.clouds, res.exclude_clouds))
    step("regions", table.glob("region", res.regions, res.exclude_regions))
    if res.cpus:
        step(f"cpus >= {res.cpus:g}", ~(table["vcpus"] < res.cpus))
    if res.memory_gb:
        step(f"memory >= {res.memory_gb:g} GiB", ~(table["memory_gb"] < res.memory_gb))
    if wanted:
        dev_mem = table.labels["accelerator"]
        per_label = np.array(
            [(accel.spec(a).memory_gb if accel.spec(a) else np.inf) for a in dev_mem.tolist()]
        )
        step(
            f"memory fit (needs ~{need:.1f} GB per accelerator)",
            per_label[table.codes["accelerator"]] >= need,
        )
    else:
        need = need - estimate.CUDA_OVERHEAD_GB + estimate.CPU_RUNTIME_GB
        step(f"memory fit (needs ~{need:.1f} GB RAM)", ~(table["memory_gb"] < need))

    idx = np.flatnonzero(mask)
    spot_ok = ~np.isnan(table["spot_price"][idx])
    rows: list[tuple[int, bool]] = []
    if res.spot is not False:
        rows += [(int(i), True) for i in idx[spot_ok]]
    if res.spot is not True:
        rows += [(int(i), False) for i in idx]
    before = len(idx) * (2 if res.spot == "auto" else 1)
    funnel.append((f"purchase option spot={res.spot}", before, len(rows)))

    cands: list[Offer] = []
    for i, is_spot in rows:
        c = _candidate(table, i, is_spot, recipe, w, nodes, opts)
        if c is not None:
            cands.append(c)
    if res.max_hourly_price:
        b = len(cands)
        cands = [c for c in cands if c.hourly / nodes <= res.max_hourly_price]
        funnel.append((f"resources.max_hourly_price ${res.max_hourly_price:g}/h per node", b, len(cands)))
    if bud.max_hourly_price:
        b = len(cands)
        cands = [c for c in cands if c.hourly <= bud.max_hourly_price]
        funnel.append((f"budget.max_hourly_price ${bud.max_hourly_price:g}/h", b, len(cands)))

    best: dict[tuple, Offer] = {}
    for c in cands:  # cheapest zone per (cloud, region, instance, purchase option)
        k = (c.cloud, c.region, c.instance, c.spot)
        if k not in best or (c.cost, c.zone) < (best[k].cost, best[k].zone):
            best[k] = c
    ranked = sorted(best.values(), key=lambda c: (c.cost, c.hourly, c.cloud, c.region, c.instance))
    if not ranked:
        raise PlanError(_explain_empty(funnel))
    notes = [w.note] if w.note else []
    return Plan(ranked, funnel, w, need, len(table), notes)


def _candidate(
    t: OfferTable, i: int, spot: bool, recipe: Recipe, w: estimate.Workload, nodes: int, opts: Options
) -> Offer | None:
    name, count = t.text("accelerator", i), float(t["count"][i])
    vcpus = float(t["vcpus"][i])
    world = max(1, int(count)) * nodes
    if name:
        sp = accel.spec(name)
        if sp is None:
            return None
        chips = accel.tpu_chips(name)[1] if sp.kind == "tpu" else count
        peak = sp.tflops * 1e12 * chips * nodes
    else:
        peak = CPU_FLOPS_PER_VCPU * (vcpus if not np.isnan(vcpus) else 1) * nodes
    hours = w.total_flops(world, recipe.train.steps) / (peak * opts.mfu) / 3600
    od_hourly = float(t["price"][i]) * nodes
    od_cost = od_hourly * hours
    if spot:
        hourly = float(t["spot_price"][i]) * nodes
        wall = estimate.spot_hours(
            hours, estimate.checkpoint_interval_hours(recipe, hours), nodes, opts.hazard
        )
    else:
        hourly, wall = od_hourly, hours
    return Offer(
        t.text("cloud", i),
        t.text("region", i),
        t.text("zone", i),
        t.text("instance", i),
        name,
        count,
        vcpus,
        float(t["memory_gb"][i]),
        spot,
        hourly,
        od_hourly,
        t.text("source", i),
        float(t["as_of"][i]),
        hours=wall,
        cost=hourly * wall,
        on_demand_cost=od_cost,
    )


_RELAX = {
    "accelerators": "add more accelerator types or counts to resources.accelerators",
    "runtime": "choose GPU accelerators",
    "CPU only": "add resources.accelerators",
    "clouds": "widen resources.clouds / exclude_clouds",
    "regions": "widen resources.regions / exclude_regions",
    "cpus": "lower resources.cpus",
    "memory >=": "lower resources.memory_gb",
    "memory fit": "use a larger-memory accelerator or machine, or lower train.batch_size / data.seq_len "
    "/ the model size",
    "purchase option": "set resources.spot to auto or false",
    "resources.max_hourly_price": "raise resources.max_hourly_price",
    "budget.max_hourly_price": "raise budget.max_hourly_price",
}


def _explain_empty(funnel: list[tuple[str, int, int]]) -> str:
    for label, before, after in funnel:
        if before > 0 and after == 0:
            fix = next((v for k, v in _RELAX.items() if label.startswith(k)), "relax it")
            return f"no offer satisfies the request: '{label}' removed the last {before} candidate(s) — {fix}"
    return "no offer satisfies the request: the price catalogs have no rows — run `spotrain catalog refresh`"
