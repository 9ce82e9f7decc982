"""Object stores for checkpoints and data: a local folder, ``s3://bucket/prefix`` (boto3),
``gs://bucket/prefix`` (google-cloud-storage). Endpoints follow each SDK's standard variables
(``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``); credentials come from each SDK's chain and
are never logged or stored.

Contracts: keys are ``/``-separated paths below the store's prefix; ``get_bytes`` returns None
for a missing key; ``list_dirs`` lists the immediate "folders" below a prefix; every call
retries transient failures with exponential backoff for a bounded total time, then raises
``StoreError`` with a message that names the bucket and what to do.
"""

from __future__ import annotations

import abc
import random
import time
from pathlib import Path
from typing import Callable, TypeVar

from spotrain.errors import SpotrainError

T = TypeVar("T")


class StoreError(SpotrainError):
    pass


class Transient(Exception):
    """A failure worth retrying (network, throttling, 5xx)."""


def with_retries(
    fn: Callable[[], T], what: str, total_seconds: float = 60.0, sleep=time.sleep, clock=time.monotonic
) -> T:
    deadline = clock() + total_seconds
    delay = 0.25
    while True:
        try:
            return fn()
        except Transient as exc:
            if clock() + delay > deadline:
                raise StoreError(
                    f"{what}: still failing after {total_seconds:g}s of retries ({exc}) — network down or "
                    "endpoint unreachable?"
                ) from None
            sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 8.0)


class ObjectStore(abc.ABC):
    uri: str
    retry_seconds: float = 60.0

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def get_file(self, key: str, path: Path) -> None: ...

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def list_dirs(self, prefix: str = "") -> list[str]: ...

    @abc.abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]: ...

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...


class BucketStore(ObjectStore):
    """Shared by bucket stores: keys live below ``self.prefix`` inside the bucket."""

    prefix: str = ""

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _list_prefix(self, prefix: str) -> str:
        """The object-name prefix that lists what is below ``prefix`` (with a trailing ``/``)."""
        return self._key(prefix).rstrip("/") + "/" if (self.prefix or prefix) else ""

    def _relative(self, name: str) -> str:
        """An object name as a key of this store."""
        return name[len(self.prefix) + 1 :] if self.prefix else name


def open_store(uri: str, base_dir: Path | None = None, **options) -> ObjectStore:
    """``s3://b/p`` → S3Store, ``gs://b/p`` → GCSStore, anything else → a local folder."""
    if uri.startswith("s3://"):
        from .s3 import S3Store

        return S3Store(uri, **options)
    if uri.startswith("gs://"):
        from .gcs import GCSStore

        return GCSStore(uri, **options)
    from .local import LocalStore

    p = Path(uri).expanduser()
    return LocalStore(p if p.is_absolute() or base_dir is None else base_dir / p)


def split_uri(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"{uri}: no bucket name — write {uri.split('://')[0]}://BUCKET/PREFIX")
    return bucket, prefix.strip("/")
