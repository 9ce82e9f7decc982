"""Rank offers for a recipe by estimated job cost (not $/h alone), explaining what each
constraint removed. Pure: the offer table, the recipe and the options come in; a Plan comes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from spotrain.errors import SpotrainError
from spotrain.recipes.schema import Recipe
from spotrain.recipes.schema.resources import parse_accelerator

from . import accelerators as accel
from . import estimate, outliers
from .offer import Offer
from .sources.skypilot import GCP_N1_FAMILIES, GCP_N1_VCPUS, SINGLE_NODE_CLOUDS
from .table import OfferTable


CPU_FLOPS_PER_VCPU = 50e9  # fp32 FMA throughput of one modern x86 vCPU (AVX2/AVX-512), for CPU-only plans


class PlanError(SpotrainError):
    pass


@dataclass(frozen=True)
class Options:
    mfu: float = estimate.DEFAULT_MFU
    hazard: estimate.Hazard = estimate.Hazard()
    trust_outliers: bool = False  # rank prices pricing.outliers flags as suspect


@dataclass
class Plan:
    candidates: Ranked  # best first, each with its estimate
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
    if recipe.resources.accelerators or recipe.resources.ordered:
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


def _gcp_n1_default_size(table: OfferTable, wanted: list[tuple[str, int]], cpus: float | None, step) -> None:
    """A GPU on a GCP N1 host gets SkyPilot's host size unless the request sets its own: at least
    the default vCPUs for that GPU count (or ``resources.cpus``) and 4 GiB per vCPU
    (``get_instance_type_for_accelerator``, sky/catalog/gcp_catalog.py:340)."""
    n1 = table.isin("cloud", {"gcp"}) & table.match("instance", lambda i: i.startswith(GCP_N1_FAMILIES))
    if not n1.any():
        return
    floor = np.zeros(len(table))
    for name, count in wanted:
        default = GCP_N1_VCPUS.get(name, GCP_N1_VCPUS["DEFAULT"]).get(count, 0)
        floor[n1 & table.isin("accelerator", {name}) & (table["count"] == count)] = cpus or default
    ok = ~n1 | ((table["vcpus"] >= floor) & (table["memory_gb"] >= 4 * floor))
    what = f"{cpus:g} vCPUs" if cpus else "its default vCPUs per GPU"
    step(f"GCP N1 host size ({what}, 4 GiB per vCPU, as SkyPilot)", ok)


def plan(recipe: Recipe, table: OfferTable, base_dir: Path = Path("."), opts: Options = Options()) -> Plan:
    """The offers for ``recipe``, best first. With ``resources.ordered`` the first accelerator
    entry that has any offer is planned (as SkyPilot's ``ordered``); the skipped ones are noted."""
    if not recipe.resources.ordered:
        return _plan(recipe, table, base_dir, opts)
    skipped = []
    for entry in recipe.resources.ordered:
        one = recipe.model_copy(
            update={"resources": recipe.resources.model_copy(update={"accelerators": [entry], "ordered": []})}
        )
        try:
            p = _plan(one, table, base_dir, opts)
        except PlanError as exc:
            skipped.append(f"{entry}: {exc}")
            continue
        p.notes[:0] = [f"resources.ordered: {entry} is the first with an offer"] + [
            f"resources.ordered skipped {s}" for s in skipped
        ]
        return p
    raise PlanError("no entry of resources.ordered has an offer — " + "; ".join(skipped))


def _plan(recipe: Recipe, table: OfferTable, base_dir: Path, opts: Options) -> Plan:
    res = recipe.resources
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
            "TPU slices on one host (tpu-v4-8, tpu-v5litepod-1/4/8, tpu-v5p-8, tpu-v6e-1/4/8, ...)",
            table.match(
                "accelerator", lambda a: not a.lower().startswith("tpu-") or a in accel.TPU_SINGLE_HOST
            ),
        )
    else:
        step("CPU only (resources.accelerators is empty)", table.isin("accelerator", {""}))
    step("clouds", table.glob("cloud", res.clouds, res.exclude_clouds))
    if res.num_nodes > 1:
        step(
            f"multi-node ({res.num_nodes} nodes; SkyPilot launches one node only on "
            f"{', '.join(sorted(SINGLE_NODE_CLOUDS))})",
            ~table.isin("cloud", SINGLE_NODE_CLOUDS),
        )
    step("regions", table.glob("region", res.regions, res.exclude_regions))
    if res.zones:
        step("zones", table.glob("zone", res.zones, []))
    if res.cpus:
        step(f"cpus >= {res.cpus:g}", ~(table["vcpus"] < res.cpus))
    if res.memory_gb:
        step(f"memory >= {res.memory_gb:g} GiB", ~(table["memory_gb"] < res.memory_gb))
    if wanted and res.memory_gb is None:
        _gcp_n1_default_size(table, wanted, res.cpus, step)
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

    ranked = _score(table, np.flatnonzero(mask), recipe, w, opts, funnel)
    if not ranked:
        raise PlanError(_explain_empty(funnel))
    notes = [w.note] if w.note else []
    return Plan(ranked, funnel, w, need, len(table), notes)


class Ranked(Sequence[Offer]):
    """The planner's ranking, best first, by (cost, $/h, cloud, region, instance): scored as arrays,
    ordered only as far as a caller reads (the best few by a partial sort; everything on a read
    past them), an ``Offer`` built only for the rows read — a CPU-only request over every cloud
    ranks a hundred thousand offers and shows ten."""

    PREFIX = 256  # offers ordered by a partial sort before anything reads past them

    def __init__(
        self,
        table: OfferTable,
        rows: np.ndarray,
        spot: np.ndarray,
        hourly: np.ndarray,
        od_hourly: np.ndarray,
        hours: np.ndarray,
        od_cost: np.ndarray,
        suspect: np.ndarray,
        place: np.ndarray,
    ) -> None:
        self.t, self.rows, self.spot, self.hourly, self.od_hourly = table, rows, spot, hourly, od_hourly
        self.hours, self.od_cost, self.suspect, self.place = hours, od_cost, suspect, place
        self.cost = hourly * hours
        self._order = np.empty(0, np.int64)  # positions, best first; complete up to its length

    def __len__(self) -> int:
        return len(self.rows)

    def _ordered(self, n: int) -> np.ndarray:
        """The order of at least the first ``n`` offers."""
        total = len(self.rows)
        if len(self._order) >= min(n, total):
            return self._order
        if n <= self.PREFIX < total // 4:
            kth = np.partition(self.cost, self.PREFIX - 1)[self.PREFIX - 1]
            cand = np.flatnonzero(self.cost <= kth)  # every offer as cheap as the 256th: whole tie runs
        else:
            cand = np.arange(total)
        order = cand[np.argsort(self.cost[cand], kind="stable")]
        c = self.cost[order]
        tied = np.r_[False, c[1:] == c[:-1]]
        if tied.any():  # each run of equal cost by $/h, then cloud, region, instance
            run = np.flatnonzero(tied | np.r_[tied[1:], False])
            sub = order[run]
            order[run] = sub[np.lexsort((self.place[sub], self.hourly[sub], self.cost[sub]))]
        self._order = order
        return order

    @overload
    def __getitem__(self, k: int) -> Offer: ...
    @overload
    def __getitem__(self, k: slice) -> list[Offer]: ...
    def __getitem__(self, k):
        n = len(self)
        if isinstance(k, slice):
            want = range(n)[k]
            order = self._ordered(max(want) + 1 if len(want) else 0)
            return [self._offer(int(order[j])) for j in want]
        if not -n <= k < n:
            raise IndexError(k)
        k %= n
        return self._offer(int(self._ordered(k + 1)[k]))

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]

    def _offer(self, j: int) -> Offer:
        t, i = self.t, int(self.rows[j])
        return Offer(
            t.text("cloud", i),
            t.text("region", i),
            t.text("zone", i),
            t.text("instance", i),
            t.text("accelerator", i),
            float(t["count"][i]),
            float(t["vcpus"][i]),
            float(t["memory_gb"][i]),
            bool(self.spot[j]),
            float(self.hourly[j]),
            float(self.od_hourly[j]),
            t.text("source", i),
            float(t["as_of"][i]),
            hours=float(self.hours[j]),
            cost=float(self.cost[j]),
            on_demand_cost=float(self.od_cost[j]),
            suspect=bool(self.suspect[j]),
        )


def _score(
    t: OfferTable,
    idx: np.ndarray,
    recipe: Recipe,
    w: estimate.Workload,
    opts: Options,
    funnel: list[tuple[str, int, int]],
) -> Ranked:
    """Every remaining row priced at each purchase option the recipe allows, as arrays: hours from
    the FLOPs on the machine's peak × MFU, spot's expected preemption losses added; the cheapest zone
    per (cloud, region, instance, purchase option); ranked by estimated cost."""
    res, bud, nodes = recipe.resources, recipe.budget, recipe.resources.num_nodes
    zkey = t.place_key(idx, zone=True)
    if len(zkey) > 1 and not np.all(zkey[1:] >= zkey[:-1]):  # a table not built by the catalog
        o = np.argsort(zkey, kind="stable")
        idx = idx[o]
    place = t.place_key(idx)

    labels = t.labels["accelerator"].tolist()
    lab_peak = np.full(len(labels) + 1, np.nan)  # FLOP/s per device; NaN: no spec, cannot be estimated
    lab_chips = np.zeros(len(labels) + 1)  # TPU chips in the slice; 0: devices = the row's count
    lab_acc = np.zeros(len(labels) + 1, bool)
    for j, a in enumerate(labels):
        sp = accel.spec(a) if a else None
        lab_acc[j] = bool(a)
        if sp is not None:
            lab_peak[j] = sp.tflops * 1e12
            lab_chips[j] = accel.tpu_chips(a)[1] if sp.kind == "tpu" else 0.0
    code = t.codes["accelerator"][idx]
    count = t["count"][idx].astype(np.float64)
    vcpus = t["vcpus"][idx].astype(np.float64)
    devices = np.where(lab_chips[code] > 0, lab_chips[code], count)
    cpu_peak = CPU_FLOPS_PER_VCPU * np.where(np.isnan(vcpus), 1.0, vcpus)
    peak = np.where(lab_acc[code], lab_peak[code] * devices, cpu_peak) * nodes
    world = np.maximum(1.0, np.floor(devices)) * nodes  # one data-parallel process per GPU or TPU chip
    hours = w.total_flops(world, recipe.train.steps) / (peak * opts.mfu) / 3600
    od_hourly = t["price"][idx] * nodes
    spot_ok = ~np.isnan(t["spot_price"][idx])

    suspect = t["suspect"][idx]
    parts = []  # (positions in idx, spot?, $/h, wall hours)
    if res.spot is not False:
        sp_at = np.flatnonzero(spot_ok)
        h = hours[sp_at]
        wall = estimate.spot_hours(h, estimate.checkpoint_interval_hours(recipe, h), nodes, opts.hazard)
        parts.append((sp_at, True, t["spot_price"][idx[sp_at]] * nodes, wall))
    if res.spot is not True:
        parts.append((np.arange(len(idx)), False, od_hourly, hours))
    funnel.append(
        (
            f"purchase option spot={res.spot}",
            len(idx) * (2 if res.spot == "auto" else 1),
            sum(len(p[0]) for p in parts),
        )
    )
    if not opts.trust_outliers:
        before = sum(len(p[0]) for p in parts)
        parts = [
            (at[keep], spot, hr[keep], wall[keep])
            for at, spot, hr, wall in parts
            for keep in [(suspect[at] & (2 if spot else 1)) == 0]
        ]
        funnel.append(
            (
                f"suspect prices (below {outliers.FRACTION:.0%} of the median elsewhere; "
                "--trust-outliers ranks them)",
                before,
                sum(len(p[0]) for p in parts),
            )
        )
    limits = []
    if res.max_hourly_price:
        limits.append(
            (f"resources.max_hourly_price ${res.max_hourly_price:g}/h per node", res.max_hourly_price * nodes)
        )
    if bud.max_hourly_price:
        limits.append((f"budget.max_hourly_price ${bud.max_hourly_price:g}/h", bud.max_hourly_price))
    for label, most in limits:
        before = sum(len(p[0]) for p in parts)
        parts = [(at[hr <= most], spot, hr[hr <= most], wall[hr <= most]) for at, spot, hr, wall in parts]
        funnel.append((label, before, sum(len(p[0]) for p in parts)))

    # the cheapest zone of each machine: rows are ordered by (cloud, region, instance, zone), so a
    # machine's zones are one run; its first row at the run's least cost wins (ties: the first zone)
    at, spot, hourly, wall = [], [], [], []
    for pos, is_spot, hr, wl in parts:
        if not len(pos):
            continue
        cost = hr * wl
        pk = place[pos]
        starts = np.flatnonzero(np.r_[True, pk[1:] != pk[:-1]])
        least = np.repeat(np.minimum.reduceat(cost, starts), np.diff(np.r_[starts, len(pos)]))
        first = np.minimum.reduceat(np.where(cost == least, np.arange(len(pos)), len(pos)), starts)
        at.append(pos[first])
        spot.append(np.full(len(first), is_spot))
        hourly.append(hr[first])
        wall.append(wl[first])
    if not at:
        e = np.empty(0)
        return Ranked(t, e.astype(np.int64), e.astype(bool), e, e, e, e, e.astype(bool), e.astype(np.int64))
    at, spot, hourly, wall = (np.concatenate(x) for x in (at, spot, hourly, wall))
    flagged = (suspect[at] & np.where(spot, 2, 1)) != 0
    return Ranked(
        t, idx[at], spot, hourly, od_hourly[at], wall, od_hourly[at] * hours[at], flagged, place[at]
    )


_RELAX = {
    "accelerators": "add more accelerator types or counts to resources.accelerators",
    "TPU slices": "choose a single-host TPU slice (up to 8 chips) or GPUs",
    "CPU only": "add resources.accelerators",
    "clouds": "widen resources.clouds / exclude_clouds",
    "multi-node": "use one node, or allow clouds that launch several (resources.clouds)",
    "regions": "widen resources.regions / exclude_regions",
    "zones": "widen resources.zones (AWS zones are zone IDs such as use1-az1)",
    "cpus": "lower resources.cpus",
    "memory >=": "lower resources.memory_gb",
    "GCP N1 host size": "set resources.cpus / memory_gb, or allow other clouds",
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
