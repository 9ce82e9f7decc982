"""The whole recipe and its cross-section rules."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from .base import Section
from .budget import Budget
from .data import Data
from .deploy import Deploy
from .evaluate import Eval
from .model import Model
from .recovery import Recovery
from .resources import Resources
from .storage import Storage
from .train import Train


class Recipe(Section):
    name: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Job name: letters, digits, `_`, `.`, `-`."
        ),
    ]
    description: Annotated[str, Field(description="Free text shown in listings.")] = ""
    seed: Annotated[
        int, Field(ge=0, description="Seed for data order, initialisation, masking and dropout.")
    ] = 0
    data: Annotated[Data, Field(description="Data collection, cleaning, split, tokenizer, packing.")]
    model: Annotated[Model, Field(description="Model architecture or checkpoint to fine-tune.")] = Model()
    train: Annotated[Train, Field(description="Training objective and optimisation.")] = Train()
    eval: Annotated[Eval, Field(description="Evaluation after training.")] = Eval()
    resources: Annotated[Resources, Field(description="Hardware the job may run on.")] = Resources()
    budget: Annotated[Budget, Field(description="Money and time limits.")] = Budget()
    storage: Annotated[Storage, Field(description="Checkpoint and data locations.")] = Storage()
    recovery: Annotated[Recovery, Field(description="What the jobs controller does after a preemption.")] = (
        Recovery()
    )
    deploy: Annotated[
        Deploy | None,
        Field(
            description=(
                "How the trained model is served. `spotrain serve` uses `limits` and `api_keys` today; "
                "`engine`, `resources`, `replicas`, spot fallback and `budget` are for services (`spotrain "
                "deploy`, not built yet)."
            )
        ),
    ] = None
    env: Annotated[
        dict[str, str | None],
        Field(
            description="Environment variables on the training nodes (SkyPilot backend), e.g. "
            "`AWS_ENDPOINT_URL`. A null value copies the variable from the shell that runs "
            "`spotrain launch`."
        ),
    ] = {}
    secrets: Annotated[
        dict[str, str | None],
        Field(
            description="Like `env`, but never shown: redacted in `--dry-run` YAML, job "
            "records and logs. Null copies the value from the launching shell — the way "
            "to keep keys out of the recipe file."
        ),
    ] = {}

    @field_validator("env", "secrets")
    @classmethod
    def _names(cls, v: dict) -> dict:
        for k in v:
            if not _ENV_NAME.match(k):
                raise ValueError(
                    f"{k!r} is not an environment variable name (letters, digits, `_`; not starting with a "
                    "digit)"
                )
        return v


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def consistency_problems(recipe: Recipe) -> list[tuple[tuple, str]]:
    """Rules that span sections, as (field path, message) pairs; empty when consistent."""
    problems: list[tuple[tuple, str]] = []
    m, t, d = recipe.model, recipe.train, recipe.data
    if t.warmup_steps > t.steps:
        problems.append(
            (
                ("train", "warmup_steps"),
                f"warmup_steps {t.warmup_steps} is more than train.steps {t.steps}: the learning rate would "
                f"never reach train.lr — lower warmup_steps (e.g. {max(t.steps // 10, 0)}) or raise steps",
            )
        )
    if recipe.deploy is not None:
        for i, name in enumerate(recipe.deploy.api_keys):
            if name not in recipe.secrets:
                problems.append(
                    (
                        ("deploy", "api_keys", i),
                        f"{name!r} is not in secrets — add `{name}: null` under secrets (the key comes from "
                        "the environment variable of that name) or remove it here",
                    )
                )
    if m.from_ is not None:
        return problems
    if t.objective == "mlm" and m.family != "bert":
        problems.append(
            (
                ("train", "objective"),
                f"objective mlm needs model.family bert (got {m.family}) — set model.family: bert",
            )
        )
    if t.objective in ("clm", "sft") and m.family == "bert":
        problems.append(
            (
                ("train", "objective"),
                f"objective {t.objective} needs a causal family — set model.family to gpt2 or llama, or use "
                "objective mlm",
            )
        )
    if d.seq_len > m.context:
        problems.append(
            (
                ("data", "seq_len"),
                f"seq_len {d.seq_len} is above model.context {m.context} — lower data.seq_len or raise "
                "model.context",
            )
        )
    tok_vocab = getattr(d.tokenizer, "vocab_size", None)
    if m.vocab_size is not None and tok_vocab and m.vocab_size < tok_vocab:
        problems.append(
            (
                ("model", "vocab_size"),
                f"vocab_size {m.vocab_size} is smaller than data.tokenizer.vocab_size {tok_vocab} — raise it "
                "or leave it null",
            )
        )
    return problems
