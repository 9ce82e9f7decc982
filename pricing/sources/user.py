"""A user price file: negotiated discounts, reserved capacity, on-prem or local machines at a
$/h. Highest precedence: an entry replaces catalog rows of the same cloud, region and
instance type; other entries add offers.

YAML, a list under ``offers:``::

    offers:
      - {cloud: aws, region: us-east-1, instance: g6.xlarge, accelerator: L4, count: 1,
         vcpus: 4, memory_gb: 16, price: 0.55, spot_price: 0.25}
      - {cloud: onprem, region: lab, instance: dgx-1, accelerator: V100, count: 8, price: 4.0}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spotrain.errors import SpotrainError
from spotrain.recipes import yamlpos


class UserOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cloud: Annotated[str, Field(min_length=1, description="Cloud or site name (e.g. aws, onprem).")]
    region: Annotated[str, Field(min_length=1, description="Region or location.")]
    zone: Annotated[str, Field(description="Zone, if priced per zone.")] = ""
    instance: Annotated[str, Field(min_length=1, description="Instance type or machine name.")]
    accelerator: Annotated[str, Field(description="Accelerator name; empty for CPU-only.")] = ""
    count: Annotated[float, Field(ge=0, description="Accelerators per node.")] = 0
    vcpus: Annotated[float | None, Field(gt=0, description="vCPUs.")] = None
    memory_gb: Annotated[float | None, Field(gt=0, description="Memory in GiB.")] = None
    price: Annotated[float, Field(gt=0, description="On-demand (or your contracted) $/h; must be positive.")]
    spot_price: Annotated[float | None, Field(gt=0, description="Spot $/h, if any; must be positive.")] = None


class PriceFileError(SpotrainError):
    pass


def read(path: Path) -> list[tuple]:
    try:
        text = path.read_text(encoding="utf-8")
        data, pos = yamlpos.load(text, max_bytes=8 * 1024 * 1024, max_nodes=2_000_000)
    except FileNotFoundError:
        raise PriceFileError(f"{path}: price file not found — check the path") from None
    except yamlpos.TooComplex as exc:
        where = f"{path}:{exc.mark[0]}:{exc.mark[1]}" if exc.mark else str(path)
        raise PriceFileError(f"{where}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise PriceFileError(f"{where}: YAML syntax error: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("offers"), list):
        raise PriceFileError(f"{path}:1:1: a price file is a mapping with a list under 'offers:'")
    mtime = path.stat().st_mtime
    rows, problems = [], []
    for i, entry in enumerate(data["offers"]):
        try:
            o = UserOffer.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                key = err["loc"][0] if err["loc"] else None
                line, col = pos.values.get(("offers", i, key)) or pos.values.get(("offers", i), (1, 1))
                problems.append(f"{path}:{line}:{col}: offers[{i}].{key}: {err['msg']}")
            continue
        nan = math.nan
        rows.append(
            (
                o.cloud,
                o.region,
                o.zone,
                o.instance,
                o.accelerator,
                o.count,
                o.vcpus or nan,
                o.memory_gb or nan,
                o.price,
                o.spot_price if o.spot_price is not None and o.spot_price < o.price else nan,
                "user",
                mtime,
            )
        )
    if problems:
        raise PriceFileError("\n".join(problems) if len(problems) > 1 else problems[0])
    return rows
