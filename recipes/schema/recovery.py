"""The ``recovery`` section: what the jobs controller does after a preemption."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Section


class Recovery(Section):
    strategy: Annotated[
        Literal["failover", "same-region", "next-region", "on-demand-fallback"],
        Field(
            description=(
                "After a preemption: `failover` (same region twice, then the next cheapest region, "
                "on-demand when spot is gone or after 3 preemptions), `same-region`, `next-region` "
                "(SkyPilot's EAGER_NEXT_REGION: never on-demand), `on-demand-fallback`."
            )
        ),
    ] = "failover"
    policy: Annotated[
        Literal["spotrain", "greedy", "uniform-progress", "eager-next-region", "on-demand"] | None,
        Field(
            description=(
                "Spot policy that drives live decisions every controller tick — spot in a region, "
                "on-demand, or wait — and may move a running job between them (the same policies `spotrain "
                "simulate` compares). `spotrain` and `greedy`/`uniform-progress` keep `budget.deadline`; "
                "unset: `strategy` picks the offer after a preemption."
            )
        ),
    ] = None
    controller: Annotated[
        Literal["spotrain", "skypilot"],
        Field(
            description=(
                "SkyPilot backend: `spotrain` (default) — spotrain's controller launches each attempt with "
                "`sky.launch` on the offer its policy picks, detects preemptions and relaunches (budget, "
                "deadline and policy apply); `skypilot` — delegate to SkyPilot managed jobs "
                "(`sky.jobs.launch`, EAGER_NEXT_REGION recovery) and import their costs and recoveries."
            )
        ),
    ] = "spotrain"
    max_restarts: Annotated[
        int, Field(ge=0, description="Give up (FAILED_NO_RESOURCE) after this many restarts.")
    ] = 10
    max_wait_minutes: Annotated[
        float, Field(gt=0, description="Give up when no capacity fits the strategy for this long.")
    ] = 60.0
