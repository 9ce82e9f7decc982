"""Read SkyPilot price catalogs (schema v8, ``<cloud>/vms.csv``) into offer rows.

Columns are found by header name (their order differs per cloud). GCP lists GPUs as rows
with no instance type, priced on top of a host VM: a GCP GPU offer is made with every host in
the same zone it can be attached to — the A2/A3/A4/G2 types that GPU requires, or for other
GPUs the N1 types within its vCPU and memory maximum — so a request's cpus/memory choose among
them (and without either, the planner applies SkyPilot's default N1 size). TPU rows carry
their whole price. Catalog artefacts are not taken at face value: a spot price ≤ 0 (Vast) or
≥ the on-demand price means "no spot offer".
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod", "vast", "nebius")
# Clouds SkyPilot 0.14.1 cannot launch more than one node on: their classes list
# CloudImplementationFeatures.MULTI_NODE in _CLOUD_UNSUPPORTED_FEATURES (sky/clouds/runpod.py:30,
# sky/clouds/vast.py:29).
SINGLE_NODE_CLOUDS = frozenset({"runpod", "vast"})

# GPU -> count -> host instance types that GPU must run on (GCP).
GCP_DEDICATED_HOSTS: dict[str, dict[int, tuple[str, ...]]] = {
    "A100": {
        1: ("a2-highgpu-1g",),
        2: ("a2-highgpu-2g",),
        4: ("a2-highgpu-4g",),
        8: ("a2-highgpu-8g",),
        16: ("a2-megagpu-16g",),
    },
    "A100-80GB": {
        1: ("a2-ultragpu-1g",),
        2: ("a2-ultragpu-2g",),
        4: ("a2-ultragpu-4g",),
        8: ("a2-ultragpu-8g",),
    },
    "L4": {
        1: ("g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32"),
        2: ("g2-standard-24",),
        4: ("g2-standard-48",),
        8: ("g2-standard-96",),
    },
    "H100": {1: ("a3-highgpu-1g",), 2: ("a3-highgpu-2g",), 4: ("a3-highgpu-4g",), 8: ("a3-highgpu-8g",)},
    "H100-MEGA": {8: ("a3-megagpu-8g",)},
    "H200": {8: ("a3-ultragpu-8g",)},
    "B200": {8: ("a4-highgpu-8g",)},
}
# Hosts sold only with their GPUs: the catalog prices them 0.0 and puts the price on the GPU row.
GCP_GPU_ONLY_HOSTS = frozenset({"a4-highgpu-8g"})
GCP_N1_FAMILIES = ("n1-standard-", "n1-highmem-", "n1-highcpu-")
# The most vCPUs and GiB an N1 host of GPU -> count may have (SkyPilot's
# _NUM_ACC_TO_MAX_CPU_AND_MEMORY, sky/catalog/gcp_catalog.py:194).
GCP_N1_MAX: dict[str, dict[int, tuple[int, int]]] = {
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 208)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
# Default host vCPUs per GPU count for N1-hosted GPUs (GCP); memory defaults to 4 GiB per vCPU
# (SkyPilot's _NUM_ACC_TO_NUM_CPU and _DEFAULT_GPU_MEMORY_CPU_RATIO, gcp_catalog.py:152 and :81).
GCP_N1_VCPUS: dict[str, dict[int, int]] = {
    "K80": {1: 4, 2: 8, 4: 16, 8: 32, 16: 64},
    "V100": {1: 8, 2: 16, 4: 32, 8: 64},
    "T4": {1: 4, 2: 8, 4: 48},
    "P100": {1: 8, 2: 16, 4: 32, 8: 64},
    "DEFAULT": {1: 8, 2: 16, 4: 32, 8: 64, 16: 128},
}


@dataclass
class ReadResult:
    rows: list[tuple] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_unpriced: int = 0


def _num(text: str, what: str, where: str) -> float:
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None


def _spot(spot: float, price: float) -> float:
    if math.isnan(spot) or spot <= 0 or (not math.isnan(price) and spot >= price):
        return math.nan
    return spot


def read_cloud(path: Path, cloud: str, as_of: float, source: str = "skypilot") -> ReadResult:
    out = ReadResult()
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            out.warnings.append(f"{path}: empty catalog file")
            return out
        col = {name: i for i, name in enumerate(header)}
        missing = {"InstanceType", "Price", "Region"} - set(col)
        if missing:
            out.warnings.append(
                f"{path}:1: not a SkyPilot v8 catalog (missing columns {sorted(missing)}) — skipped"
            )
            return out
        get = lambda r, k: r[col[k]] if k in col and col[k] < len(r) else ""  # noqa: E731
        gcp_hosts: dict[str, list[tuple]] = {}
        gcp_accels: list[tuple] = []
        for lineno, r in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            if len(r) != len(header):
                out.warnings.append(f"{where}: {len(r)} fields, header has {len(header)} — row skipped")
                continue
            try:
                price = _num(get(r, "Price"), "Price", where)
                spot = _num(get(r, "SpotPrice"), "SpotPrice", where)
                count = _num(get(r, "AcceleratorCount"), "AcceleratorCount", where)
                vcpus = _num(get(r, "vCPUs"), "vCPUs", where)
                mem = _num(get(r, "MemoryGiB"), "MemoryGiB", where)
            except ValueError as exc:
                out.warnings.append(f"{exc} — row skipped")
                continue
            if math.isnan(price):
                out.skipped_unpriced += 1
                continue
            inst, acc, region, zone = (
                get(r, "InstanceType"),
                get(r, "AcceleratorName"),
                get(r, "Region"),
                get(r, "AvailabilityZone"),
            )
            if price == 0 and cloud == "gcp" and inst in GCP_GPU_ONLY_HOSTS:
                # a host sold only with its GPUs (a4-highgpu-8g): the GPU row carries the whole price
                gcp_hosts.setdefault(zone, []).append((inst, vcpus, mem, 0.0, 0.0, region))
                continue
            if price <= 0:
                out.warnings.append(f"{where}: Price {price} is not positive — row skipped")
                continue
            if cloud == "gcp":
                if inst:
                    gcp_hosts.setdefault(zone, []).append((inst, vcpus, mem, price, spot, region))
                elif acc:
                    gcp_accels.append((acc, count, region, zone, price, spot))
                continue
            out.rows.append(
                (
                    cloud,
                    region,
                    zone,
                    inst,
                    acc,
                    0.0 if math.isnan(count) else count,
                    vcpus,
                    mem,
                    price,
                    _spot(spot, price),
                    source,
                    as_of,
                )
            )
        if cloud == "gcp":
            _pair_gcp(gcp_hosts, gcp_accels, out, as_of, source)
    return out


def _gcp_hosts(hosts: list[tuple], acc: str, count: int) -> list[tuple]:
    """Every host in the zone ``acc``:``count`` can be attached to, as SkyPilot's GCP catalog
    allows it (``check_accelerator_attachable_to_host``): the A2/A3/A4/G2 types that GPU needs, or
    for the other GPUs any N1 within the vCPU and memory maximum for that count. Which of them a
    request may use (its cpus/memory, or SkyPilot's default host size) is the planner's filter."""
    if acc in GCP_DEDICATED_HOSTS:
        allowed = GCP_DEDICATED_HOSTS[acc].get(count, ())
        return [h for h in hosts if h[0] in allowed]
    if count not in GCP_N1_VCPUS.get(acc, GCP_N1_VCPUS["DEFAULT"]):
        return []
    most_cpus, most_mem = GCP_N1_MAX.get(acc, {}).get(count, (math.inf, math.inf))
    return [h for h in hosts if h[0].startswith(GCP_N1_FAMILIES) and h[1] <= most_cpus and h[2] <= most_mem]


def _pair_gcp(
    hosts: dict[str, list[tuple]], accels: list[tuple], out: ReadResult, as_of: float, source: str
) -> None:
    for zone, zone_hosts in hosts.items():  # CPU-only offers
        for inst, vcpus, mem, price, spot, region in zone_hosts:
            if price > 0:
                out.rows.append(
                    ("gcp", region, zone, inst, "", 0.0, vcpus, mem, price, _spot(spot, price), source, as_of)
                )
    for acc, count, region, zone, price, spot in accels:
        if acc.lower().startswith("tpu-"):
            out.rows.append(
                (
                    "gcp",
                    region,
                    zone,
                    "TPU-VM",
                    acc,
                    1.0,
                    math.nan,
                    math.nan,
                    price,
                    _spot(spot, price),
                    source,
                    as_of,
                )
            )
            continue
        for inst, vcpus, mem, hprice, hspot, _ in _gcp_hosts(hosts.get(zone, []), acc, int(count)):
            total = hprice + price
            total_spot = hspot + spot if not (math.isnan(hspot) or math.isnan(spot)) else math.nan
            out.rows.append(
                (
                    "gcp",
                    region,
                    zone,
                    inst,
                    acc,
                    count,
                    vcpus,
                    mem,
                    total,
                    _spot(total_spot, total),
                    source,
                    as_of,
                )
            )
