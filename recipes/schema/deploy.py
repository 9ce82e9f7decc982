"""The ``deploy`` section: how the trained model is served — engine, replicas on spot capacity,
API limits and keys, and a money cap per day and per month (used by ``spotrain serve`` today)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Section
from .resources import Resources


class Replicas(Section):
    min: Annotated[int, Field(ge=0, description="Replicas always up (0: scale to zero when idle).")] = 1
    max: Annotated[int, Field(ge=1, description="Replicas at most.")] = 1
    target_qps_per_replica: Annotated[
        float | None,
        Field(gt=0, description="Requests per second one replica should take; scales between min and max."),
    ] = None

    @model_validator(mode="after")
    def _order(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max} — lower min or raise max")
        return self


class Limits(Section):
    max_prompt_tokens: Annotated[int, Field(ge=1, description="Longer prompts are answered 413.")] = 2048
    max_new_tokens: Annotated[int, Field(ge=1, description="`max_tokens` above this is answered 422.")] = 512
    max_batch: Annotated[
        int, Field(ge=1, le=256, description="Requests decoded together (dynamic batching).")
    ] = 16
    max_concurrency: Annotated[
        int, Field(ge=1, description="Requests in flight per replica; more are answered 429.")
    ] = 64
    rate_limit_per_minute: Annotated[
        int, Field(ge=0, description="Requests a minute per API key (0: none).")
    ] = 0


class DeployBudget(Section):
    max_cost_per_day: Annotated[float | None, Field(gt=0, description="USD a day for the whole service.")] = (
        None
    )
    max_cost_per_month: Annotated[
        float | None, Field(gt=0, description="USD a calendar month for the whole service.")
    ] = None


class Deploy(Section):
    engine: Annotated[
        Literal["auto", "transformers", "vllm"],
        Field(description="`auto`: vLLM on CUDA GPUs, spotrain's transformers server elsewhere."),
    ] = "auto"
    resources: Annotated[
        Resources | None,
        Field(
            description=(
                "Hardware per replica; unset: the cheapest offer whose memory fits the model for inference."
            )
        ),
    ] = None
    replicas: Annotated[Replicas, Field(description="How many replicas.")] = Replicas()
    spot: Annotated[bool, Field(description="Replicas on spot capacity.")] = True
    base_ondemand_fallback: Annotated[
        int,
        Field(
            ge=0,
            description=(
                "On-demand replicas kept beside spot ones (SkyServe's base_ondemand_fallback_replicas)."
            ),
        ),
    ] = 0
    dynamic_ondemand_fallback: Annotated[
        bool,
        Field(
            description=(
                "Replace preempted spot replicas with on-demand ones until spot returns (as SkyServe)."
            )
        ),
    ] = False
    limits: Annotated[Limits, Field(description="What one request may ask, and how many.")] = Limits()
    api_keys: Annotated[
        list[str],
        Field(
            description=(
                "Names of entries of `secrets` whose values are the API keys (Bearer); empty: no auth. "
                "`spotrain serve` reads each from the environment variable of that name."
            )
        ),
    ] = []
    budget: Annotated[DeployBudget, Field(description="Money limits of the service.")] = DeployBudget()
