"""The ``storage`` section: where checkpoints and prepared data live."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Section


class Storage(Section):
    checkpoints: Annotated[
        str | None,
        Field(
            description=(
                "Checkpoint location: a local path (relative to the run folder, i.e. --workdir), "
                "`s3://bucket/prefix` or `gs://bucket/prefix` (saved locally first, uploaded in the "
                "background; a new machine resumes from the bucket); null = `<workdir>/checkpoints`."
            )
        ),
    ] = None
    data_cache: Annotated[
        str | None,
        Field(
            description=(
                "Prepared-data cache folder, keyed by a fingerprint of sources and data config; null = "
                "`$SPOTRAIN_CACHE` or `~/.cache/spotrain/data`."
            )
        ),
    ] = None
    sse: Annotated[
        Literal["none", "AES256", "aws:kms"],
        Field(
            description=(
                "S3 server-side encryption: `AES256` (SSE-S3) or `aws:kms` (SSE-KMS, with kms_key_id)."
            )
        ),
    ] = "none"
    kms_key_id: Annotated[str | None, Field(description="S3 SSE-KMS key id or ARN.")] = None
    gcs_kms_key_name: Annotated[
        str | None, Field(description="GCS customer-managed encryption key (projects/.../cryptoKeys/...).")
    ] = None
    upload_timeout_s: Annotated[
        float,
        Field(
            gt=0,
            description=(
                "On SIGTERM, how long the final checkpoint's upload may take before exiting without it "
                "(keep it inside the cloud's grace period)."
            ),
        ),
    ] = 90.0
    retry_seconds: Annotated[
        float,
        Field(
            gt=0,
            description="Total time one storage operation is retried (exponential backoff) before failing.",
        ),
    ] = 60.0

    def remote(self) -> bool:
        return bool(self.checkpoints) and self.checkpoints.startswith(("s3://", "gs://"))

    def store_options(self) -> dict:
        return {
            "sse": None if self.sse == "none" else self.sse,
            "kms_key_id": self.kms_key_id,
            "kms_key_name": self.gcs_kms_key_name,
            "retry_seconds": self.retry_seconds,
        }
