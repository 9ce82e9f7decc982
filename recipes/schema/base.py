"""Base model for every recipe section: unknown keys are errors, every field is documented."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section. ``extra="forbid"`` turns a typo'd key into an error (with a
    "did you mean" hint added by :mod:`spotrain.recipes.loader`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)
