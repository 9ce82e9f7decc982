"""The ``storage`` section: where checkpoints and prepared data live."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Section


class Storage(Section):
    checkpoints: Annotated[str | None, Field(description="Checkpoint location: a local path (relative to the run folder, i.e. --workdir), later `s3://bucket/prefix` or `gs://bucket/prefix`; null = `<workdir>/checkpoints`.")] = None
    data_cache: Annotated[str | None, Field(description="Prepared-data cache folder, keyed by a fingerprint of sources and data config; null = `$SPOTRAIN_CACHE` or `~/.cache/spotrain/data`.")] = None
