"""Accelerator specs: peak dense bf16/fp16 tensor throughput and memory per device.

Figures are vendor datasheet values (dense, no sparsity; fp16 where the chip has no bf16),
rounded; they feed run-time estimates (with an assumed MFU) and memory-fit checks, so a
few percent does not change a ranking. TPUs are listed per chip; catalog names such as
``tpu-v4-8`` count TensorCores (2 per chip for v2/v3/v4/v5p, 1 for v5e/v6e).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    name: str
    tflops: float  # peak dense bf16/fp16 TFLOP/s per device
    memory_gb: float  # per device
    kind: str = "gpu"  # gpu | tpu


_GPUS: dict[str, tuple[float, float]] = {
    "B200": (2250, 180),
    "H200": (989, 141),
    "H100": (989, 80),
    "H100-MEGA": (989, 80),
    "GH200": (989, 96),
    "A100-80GB": (312, 80),
    "A100-80GB-SXM": (312, 80),
    "A100": (312, 40),
    "MI300X": (1307, 192),
    "MI25": (24.6, 16),
    "L40S": (362, 48),
    "L40": (181, 48),
    "L4": (121, 24),
    "A10": (125, 24),
    "A10G": (70, 24),
    "T4": (65, 16),
    "V100-32GB": (125, 32),
    "V100": (125, 16),
    "P100": (18.7, 16),
    "P4": (5.5, 8),
    "K80": (4.4, 12),
    "M60": (4.8, 8),
    "A6000": (155, 48),
    "RTXA6000": (155, 48),
    "RTXA5000": (111, 24),
    "RTX6000": (130, 24),
    "RTX6000-Ada": (182, 48),
    "RTX5880-Ada": (150, 48),
    "RTXPRO6000WS": (504, 96),
    "RTX5090": (209, 32),
    "RTX5070": (62, 12),
    "RTX4090": (165, 24),
    "RTX4070": (58, 12),
    "RTX4060": (30, 8),
    "RTX3090": (71, 24),
    "RTX3060": (25, 12),
}
# TPU generation -> (TFLOP/s per chip, GB per chip, TensorCores per chip)
_TPUS: dict[str, tuple[float, float, int]] = {
    "v2": (45, 16, 2),
    "v3": (123, 32, 2),
    "v4": (275, 32, 2),
    "v5p": (459, 95, 2),
    "v5litepod": (197, 16, 1),
    "v5e": (197, 16, 1),
    "v6e": (918, 32, 1),
}
# Single-host TPU slices (one VM, all chips local): the slices spotrain plans and runs. Larger
# slices span several hosts (a pod), which the runtime does not drive.
TPU_SINGLE_HOST = frozenset(
    {"tpu-v2-8", "tpu-v3-8", "tpu-v4-8", "tpu-v5litepod-1", "tpu-v5litepod-4", "tpu-v5litepod-8", "tpu-v5p-8"}
    | {"tpu-v6e-1", "tpu-v6e-4", "tpu-v6e-8"}
)
_TPU_NAME = re.compile(r"^tpu-(v\d+[a-z]*|v5litepod)-(\d+)$", re.I)
_BY_LOWER = {k.lower(): k for k in _GPUS}


def tpu_chips(name: str) -> tuple[Spec, int] | None:
    """``tpu-v4-8`` → (per-chip spec, 4 chips)."""
    m = _TPU_NAME.match(name)
    if not m or m.group(1).lower() not in _TPUS:
        return None
    gen = m.group(1).lower()
    tf, mem, cores = _TPUS[gen]
    return Spec(f"tpu-{gen}", tf, mem, "tpu"), max(1, int(m.group(2)) // cores)


def spec(name: str) -> Spec | None:
    """Per-device spec for a catalog/recipe accelerator name (case-insensitive), or None."""
    canon = _BY_LOWER.get(name.lower())
    if canon:
        tf, mem = _GPUS[canon]
        return Spec(canon, tf, mem)
    tpu = tpu_chips(name)
    return tpu[0] if tpu else None


def canonical(name: str, known: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The catalog spelling of ``name`` (case-insensitive) among specs and ``known`` names."""
    pool = {k.lower(): k for k in (*_GPUS, *known)}
    return pool.get(name.lower()) or (name if tpu_chips(name) else None)


def suggest(name: str, known: set[str] | frozenset[str] = frozenset()) -> list[str]:
    pool = sorted({*_GPUS, *known})
    lower = {k.lower(): k for k in pool}
    return [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)]


def all_names() -> list[str]:
    return sorted(_GPUS)
