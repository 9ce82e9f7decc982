"""The recipe field reference as a Markdown table, generated from the schema (docs/recipes.md embeds it)."""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .schema import Recipe
from .schema.budget import Budget
from .schema.data import (
    AugmentStep,
    BPETokenizer,
    Clean,
    Data,
    FilesSource,
    NearDedup,
    PretrainedTokenizer,
    Split,
    StdlibSource,
)
from .schema.deploy import Deploy, DeployBudget, Limits, Replicas
from .schema.evaluate import Eval, Prompt
from .schema.model import Model
from .schema.recovery import Recovery
from .schema.resources import Resources
from .schema.storage import Storage
from .schema.train import Checkpoints, Train

SECTIONS: list[tuple[type[BaseModel], str]] = [
    (Recipe, ""),
    (Data, "data."),
    (FilesSource, "data.sources[] type files: "),
    (StdlibSource, "data.sources[] type stdlib: "),
    (Clean, "data.clean."),
    (NearDedup, "data.clean.near_dedup."),
    (AugmentStep, "data.augment[]."),
    (Split, "data.split."),
    (BPETokenizer, "data.tokenizer type bpe: "),
    (PretrainedTokenizer, "data.tokenizer type pretrained: "),
    (Model, "model."),
    (Train, "train."),
    (Checkpoints, "train.checkpoints."),
    (Eval, "eval."),
    (Prompt, "eval.prompts[]."),
    (Resources, "resources."),
    (Budget, "budget."),
    (Storage, "storage."),
    (Recovery, "recovery."),
    (Deploy, "deploy."),
    (Replicas, "deploy.replicas."),
    (Limits, "deploy.limits."),
    (DeployBudget, "deploy.budget."),
]


def _default(value) -> str:
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def reference_markdown() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for cls, prefix in SECTIONS:
        for name, info in cls.model_fields.items():
            desc = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{prefix}{info.alias or name}` | {_default(info.default)} | {desc} |")
    return "\n".join(lines) + "\n"
