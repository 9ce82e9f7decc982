"""The ``resources`` section: what hardware the job may run on (used by the planner and launcher)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section

_ACC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(?::([1-9][0-9]*))?$")


def parse_accelerator(spec: str) -> tuple[str, int]:
    """``"A100:8"`` → ``("A100", 8)``; ``"L4"`` → ``("L4", 1)``."""
    m = _ACC.match(spec.strip())
    if not m:
        raise ValueError(f"accelerator {spec!r} is not NAME or NAME:COUNT (e.g. A100:8)")
    return m.group(1), int(m.group(2) or 1)


class Resources(Section):
    accelerators: Annotated[
        list[str],
        Field(
            description=(
                "Any of these accelerators, as NAME:COUNT per node (e.g. `[L4:1, A10G:1, A100:1]`); empty = "
                "CPU only."
            )
        ),
    ] = []
    ordered: Annotated[
        list[str],
        Field(
            description=(
                "Accelerators in order of preference, as NAME:COUNT (e.g. `[H100:1, A100:1, L4:1]`): the "
                "first with any offer that fits the other constraints wins, however cheap the later "
                "ones (SkyPilot's `ordered`). Instead of `accelerators`."
            )
        ),
    ] = []
    cpus: Annotated[float | None, Field(gt=0, description="Minimum vCPUs per node.")] = None
    memory_gb: Annotated[float | None, Field(gt=0, description="Minimum memory per node in GiB.")] = None
    disk_gb: Annotated[int, Field(ge=10, description="Boot disk size per node in GiB.")] = 100
    num_nodes: Annotated[int, Field(ge=1, description="Nodes for multi-node data parallel.")] = 1
    spot: Annotated[
        bool | Literal["auto"],
        Field(
            description=(
                "`true`: spot only; `false`: on-demand only; `auto`: the spot policy decides "
                "(deadline-aware)."
            )
        ),
    ] = "auto"
    clouds: Annotated[list[str], Field(description="Allowed clouds (globs); empty = all enabled.")] = []
    exclude_clouds: Annotated[list[str], Field(description="Clouds never used (globs).")] = []
    regions: Annotated[
        list[str], Field(description="Allowed regions (globs, e.g. `us-*`); empty = all.")
    ] = []
    exclude_regions: Annotated[list[str], Field(description="Regions never used (globs).")] = []
    zones: Annotated[
        list[str],
        Field(
            description=(
                "Allowed zones (globs, e.g. `us-central1-a`); empty = all. AWS zones by zone ID "
                "(`use1-az1`), as the catalogs name them: zone names differ per account."
            )
        ),
    ] = []
    max_hourly_price: Annotated[
        float | None, Field(gt=0, description="Never rent an offer above this $/h per node.")
    ] = None

    @field_validator("accelerators", "ordered")
    @classmethod
    def _accelerators(cls, v: list[str]) -> list[str]:
        for spec in v:
            parse_accelerator(spec)
        return v

    @model_validator(mode="after")
    def _one_accelerator_list(self) -> Resources:
        if self.accelerators and self.ordered:
            raise ValueError(
                "set resources.accelerators (any of them, cheapest wins) or resources.ordered "
                "(first with an offer wins), not both"
            )
        return self
