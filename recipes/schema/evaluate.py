"""The ``eval`` section: held-out metrics, generation metrics, error analysis."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from .base import Section


class Prompt(Section):
    prompt: Annotated[str, Field(description="Text given to the model.")]
    reference: Annotated[str, Field(description="Expected continuation, scored with BLEU and chrF.")]


class Eval(Section):
    splits: Annotated[
        list[str],
        Field(description="Splits to score for perplexity and token accuracy at the end of training."),
    ] = ["val", "test"]
    max_batches: Annotated[
        int | None, Field(ge=1, description="Cap on batches per split (null = the whole split).")
    ] = None
    prompts: Annotated[
        list[Prompt],
        Field(
            description=(
                "Prompts with references: greedy generations are scored with BLEU and chrF (sacrebleu)."
            )
        ),
    ] = []
    prompts_file: Annotated[
        str | None, Field(description="JSONL file of {prompt, reference} objects, added to `prompts`.")
    ] = None
    max_new_tokens: Annotated[int, Field(ge=1, description="Tokens generated per prompt.")] = 64
    error_analysis: Annotated[
        int, Field(ge=0, description="Report the N highest-loss test examples (0 disables).")
    ] = 10

    @model_validator(mode="after")
    def _splits(self) -> "Eval":
        bad = [s for s in self.splits if s not in ("train", "val", "test")]
        if bad:
            raise ValueError(f"unknown split(s) {bad}; use train, val or test")
        return self
