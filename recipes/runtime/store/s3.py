"""``s3://bucket/prefix`` through boto3 (honours AWS_ENDPOINT_URL). Server-side encryption:
``sse="AES256"`` (SSE-S3) or ``sse="aws:kms"`` with ``kms_key_id`` (SSE-KMS)."""

from __future__ import annotations

from pathlib import Path

from .base import BucketStore, StoreError, Transient, split_uri, with_retries


def _credential_source() -> str:
    import boto3

    creds = boto3.Session().get_credentials()
    return getattr(creds, "method", "unknown") if creds is not None else "none found"


class S3Store(BucketStore):
    def __init__(
        self,
        uri: str,
        sse: str | None = None,
        kms_key_id: str | None = None,
        retry_seconds: float = 60.0,
        **_,
    ):
        import boto3
        from botocore.config import Config

        self.uri, self.retry_seconds = uri, retry_seconds
        self.bucket, self.prefix = split_uri(uri)
        self.client = boto3.client(
            "s3", config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)
        )
        self.extra: dict = {}
        if sse:
            self.extra["ServerSideEncryption"] = sse
            if kms_key_id:
                self.extra["SSEKMSKeyId"] = kms_key_id

    def _call(self, what: str, fn):
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError as BotoConnectionError,
            EndpointConnectionError,
        )

        def attempt():
            try:
                return fn()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in ("NoSuchBucket",):
                    raise StoreError(
                        f"bucket s3://{self.bucket} does not exist — create it or fix storage.checkpoints"
                    ) from None
                if code in (
                    "AccessDenied",
                    "403",
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "AllAccessDisabled",
                ):
                    raise StoreError(
                        f"access denied to s3://{self.bucket}/{self.prefix} ({code}) with credentials from "
                        f"'{_credential_source()}' — check the IAM policy or the credentials in use"
                    ) from None
                if code in ("NoSuchKey", "404"):
                    raise FileNotFoundError(what) from None
                if status >= 500 or code in ("SlowDown", "RequestTimeout", "ThrottlingException"):
                    raise Transient(f"{code or status}") from None
                raise StoreError(f"{what}: S3 error {code or status} on s3://{self.bucket}") from None
            except (EndpointConnectionError, BotoConnectionError, BotoCoreError) as exc:
                raise Transient(type(exc).__name__) from None

        return with_retries(attempt, f"{what} (s3://{self.bucket})", self.retry_seconds)

    def put_file(self, key: str, path: Path) -> None:
        self._call(
            f"upload {key}",
            lambda: self.client.upload_file(
                str(path), self.bucket, self._key(key), ExtraArgs=self.extra or None
            ),
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(
            f"upload {key}",
            lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **self.extra),
        )

    def get_file(self, key: str, path: Path) -> None:
        self._call(
            f"download {key}", lambda: self.client.download_file(self.bucket, self._key(key), str(path))
        )

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._call(
                f"download {key}",
                lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read(),
            )
        except FileNotFoundError:
            return None

    def _list(self, prefix: str, delimiter: bool) -> tuple[list[str], list[str]]:
        full = self._list_prefix(prefix)
        dirs, keys = [], []
        token = None
        while True:
            kw = {
                "Bucket": self.bucket,
                "Prefix": full,
                **({"Delimiter": "/"} if delimiter else {}),
                **({"ContinuationToken": token} if token else {}),
            }
            page = self._call("list", lambda: self.client.list_objects_v2(**kw))
            dirs += [p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
            keys += [self._relative(o["Key"]) for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(dirs), sorted(keys)

    def list_dirs(self, prefix: str = "") -> list[str]:
        return self._list(prefix, True)[0]

    def list_keys(self, prefix: str = "") -> list[str]:
        return self._list(prefix, False)[1]

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list_keys(prefix)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            self._call(
                "delete", lambda: self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            )
