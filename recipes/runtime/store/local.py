"""A local folder as an object store (atomic writes: temp name, fsync, rename)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .base import ObjectStore


class LocalStore(ObjectStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, key: str, path: Path) -> None:
        dst = self._path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(path, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)

    def put_bytes(self, key: str, data: bytes) -> None:
        dst = self._path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)

    def get_file(self, key: str, path: Path) -> None:
        shutil.copyfile(self._path(key), path)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def list_dirs(self, prefix: str = "") -> list[str]:
        d = self._path(prefix) if prefix else self.root
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def list_keys(self, prefix: str = "") -> list[str]:
        d = self._path(prefix) if prefix else self.root
        if not d.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)
