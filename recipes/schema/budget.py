"""The ``budget`` section: money and time limits for the whole job, recoveries included."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import Field, field_validator

from .base import Section


def parse_duration(text: str) -> timedelta:
    """``"90m"`` → 90 minutes (``spotrain.units.parse_seconds``, a unit required)."""
    from spotrain.units import parse_seconds

    return timedelta(seconds=parse_seconds(text, unit_required=True))


class Budget(Section):
    max_cost: Annotated[
        float | None,
        Field(
            gt=0,
            description=(
                "USD cap for the whole job including every recovery; the job stops gracefully (checkpoint "
                "first) when reached."
            ),
        ),
    ] = None
    max_hourly_price: Annotated[
        float | None, Field(gt=0, description="USD per hour cap for the whole job (all nodes).")
    ] = None
    deadline: Annotated[
        datetime | str | None,
        Field(
            description=(
                "Finish by this time (ISO 8601 with timezone) or within this duration of launch (e.g. `36h`)."
            )
        ),
    ] = None

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, v):
        if isinstance(v, str):
            parse_duration(v)
        elif isinstance(v, datetime) and v.tzinfo is None:
            raise ValueError("deadline needs a timezone, e.g. 2026-12-01T18:00:00+00:00")
        return v
