"""``gs://bucket/prefix`` through google-cloud-storage (honours STORAGE_EMULATOR_HOST).
Customer-managed encryption: ``kms_key_name`` (CMEK) on every object written."""

from __future__ import annotations

import os
from pathlib import Path

from .base import BucketStore, StoreError, Transient, split_uri, with_retries


class GCSStore(BucketStore):
    def __init__(self, uri: str, kms_key_name: str | None = None, retry_seconds: float = 60.0, **_):
        from google.cloud import storage

        self.uri, self.retry_seconds = uri, retry_seconds
        self.bucket_name, self.prefix = split_uri(uri)
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            self.client = storage.Client(
                project=os.environ.get("GOOGLE_CLOUD_PROJECT", "spotrain"), credentials=AnonymousCredentials()
            )
        else:
            try:
                self.client = storage.Client()
            except Exception as exc:  # noqa: BLE001 - google.auth raises several types for "no credentials"
                raise StoreError(
                    f"no Google credentials for gs://{self.bucket_name} ({type(exc).__name__}) — run "
                    "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
                ) from None
        self.bucket = self.client.bucket(self.bucket_name)
        self.kms_key_name = kms_key_name

    def _call(self, what: str, fn):
        from google.api_core import exceptions as gexc
        from requests import exceptions as rexc

        def attempt():
            try:
                return fn()
            except gexc.NotFound as exc:
                if "bucket" in str(exc).lower() and "object" not in str(exc).lower():
                    raise StoreError(
                        f"bucket gs://{self.bucket_name} does not exist — create it or fix "
                        "storage.checkpoints"
                    ) from None
                raise FileNotFoundError(what) from None
            except gexc.Forbidden:
                raise StoreError(
                    f"access denied to gs://{self.bucket_name}/{self.prefix} with Google application-default "
                    "credentials — check the bucket's IAM bindings"
                ) from None
            except (
                gexc.ServiceUnavailable,
                gexc.InternalServerError,
                gexc.TooManyRequests,
                gexc.GatewayTimeout,
                rexc.ConnectionError,
                rexc.Timeout,
            ) as exc:
                raise Transient(type(exc).__name__) from None

        return with_retries(attempt, f"{what} (gs://{self.bucket_name})", self.retry_seconds)

    def _blob(self, key: str):
        return self.bucket.blob(self._key(key), kms_key_name=self.kms_key_name)

    def put_file(self, key: str, path: Path) -> None:
        self._call(f"upload {key}", lambda: self._blob(key).upload_from_filename(str(path), retry=None))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(f"upload {key}", lambda: self._blob(key).upload_from_string(data, retry=None))

    def get_file(self, key: str, path: Path) -> None:
        self._call(
            f"download {key}", lambda: self.bucket.blob(self._key(key)).download_to_filename(str(path))
        )

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._call(f"download {key}", lambda: self.bucket.blob(self._key(key)).download_as_bytes())
        except FileNotFoundError:
            return None

    def _list(self, prefix: str, delimiter: bool):
        full = self._list_prefix(prefix)

        def go():
            it = self.client.list_blobs(self.bucket_name, prefix=full, delimiter="/" if delimiter else None)
            keys = [self._relative(b.name) for b in it]
            return sorted(p[len(full) :].rstrip("/") for p in it.prefixes), sorted(keys)

        return self._call("list", go)

    def list_dirs(self, prefix: str = "") -> list[str]:
        return self._list(prefix, True)[0]

    def list_keys(self, prefix: str = "") -> list[str]:
        return self._list(prefix, False)[1]

    def delete_prefix(self, prefix: str) -> None:
        for k in self.list_keys(prefix):
            try:
                self._call("delete", lambda: self.bucket.blob(self._key(k)).delete())
            except FileNotFoundError:
                pass
