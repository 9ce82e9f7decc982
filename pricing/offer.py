"""The one offer type: a purchasable way to run a job — where, on what machine, spot or on-demand,
at what $/h for all its nodes — and, once the planner has ranked it, its estimate.

It travels unchanged from the catalog (``OfferTable.offers``) through the planner's ranking, the job
record (stored as JSON, loaded back by ``Offer.from_json``) and the controller's recovery choices
to the compiled SkyPilot task. Nothing outside ``to_json``/``from_json`` handles an offer as a dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Offer:
    cloud: str
    region: str
    zone: str
    instance: str
    accelerator: str  # "" for a CPU-only machine
    count: float  # accelerators per node
    vcpus: float  # per node (0 when the catalog does not say)
    memory_gb: float  # per node (0 when the catalog does not say)
    spot: bool
    hourly: float  # $/h for the whole job (all nodes) at this purchase option
    on_demand_hourly: float  # $/h for the same machines on demand
    source: str = ""  # the price's source (a catalog name, "aws-live", "user")
    as_of: float = 0.0  # when the price was true (Unix time)
    # the planner's estimate (None on a bare catalog offer)
    hours: float | None = None  # expected wall hours, preemption overhead included
    cost: float | None = None  # hourly * hours
    on_demand_cost: float | None = None  # the same work on demand
    suspect: bool = False  # its price is far below the same machine's elsewhere (pricing.outliers)
    # a managed offer (``controller: skypilot``): SkyPilot picks one of these and may move between them
    choices: tuple[Offer, ...] = field(default=())

    def __post_init__(self) -> None:
        for k in (
            "count",
            "vcpus",
            "memory_gb",
        ):  # unknown is 0, never NaN: NaN breaks equality and strict JSON
            v = getattr(self, k)
            if v is None or math.isnan(v):
                object.__setattr__(self, k, 0.0)

    @property
    def managed(self) -> bool:
        return bool(self.choices)

    @property
    def savings(self) -> float:
        """Fraction saved against on-demand by the estimate (0 without one)."""
        return 1 - self.cost / self.on_demand_cost if self.cost is not None and self.on_demand_cost else 0.0

    @property
    def key(self) -> tuple:
        """What tells two offers apart: where and how it is bought."""
        return (self.cloud, self.region, self.zone, self.instance, self.spot)

    @property
    def place(self) -> str:
        return f"{self.cloud}/{self.region}/{self.instance}"

    @property
    def machine(self) -> str:
        """``A100:8`` or ``8 vCPU``."""
        return f"{self.accelerator}:{self.count:g}" if self.accelerator else f"{self.vcpus:g} vCPU"

    def at(self, spot: bool) -> Offer:
        """The same machines bought the other way (no estimate: it would be another one)."""
        if spot == self.spot:
            return self
        if spot:
            raise ValueError("an on-demand offer does not know its spot price")
        return replace(
            self, spot=False, hourly=self.on_demand_hourly, hours=None, cost=None, on_demand_cost=None
        )

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "choices"}
        if self.choices:
            out["choices"] = [c.to_json() for c in self.choices]
            out["managed"] = True
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Offer:
        known = {f.name for f in fields(cls)}
        v = {k: d[k] for k in known if k in d}
        v["spot"] = bool(v.get("spot", False))
        v["choices"] = tuple(cls.from_json(c) for c in d.get("choices") or ())
        for k in ("zone", "accelerator", "source"):
            v[k] = str(v.get(k) or "")
        for k in ("count", "vcpus", "memory_gb"):
            v[k] = float(v.get(k) or 0.0)
        return cls(**v)
