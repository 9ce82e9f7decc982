"""Documents and where they come from: local files/globs (text, JSONL) and Python's stdlib."""

from __future__ import annotations

import glob
import hashlib
import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from spotrain.errors import DataError
from spotrain.recipes.schema.data import FilesSource, StdlibSource


@dataclass(frozen=True)
class Doc:
    """One document. For the ``sft`` objective ``prompt``/``response`` are set and ``text`` joins them."""

    text: str
    prompt: str | None = None
    response: str | None = None

    def map(self, fn) -> "Doc":
        if self.prompt is None:
            return Doc(fn(self.text))
        p, r = fn(self.prompt), fn(self.response)
        return Doc(p + r, p, r)

    def key(self) -> bytes:
        """Identity used for exact dedup and the split: the prompt/response boundary counts."""
        if self.prompt is None:
            return self.text.encode("utf-8", "surrogatepass")
        return (self.prompt + "\x00" + self.response).encode("utf-8", "surrogatepass")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(index: int, source: FilesSource | StdlibSource, base_dir: Path) -> list[Path]:
    """The files of one source, sorted, deduplicated. Raises DataError when a pattern matches nothing."""
    if isinstance(source, StdlibSource):
        root = stdlib_root()
        found: list[Path] = []
        for pattern in source.include:
            found += [Path(p) for p in glob.glob(str(root / pattern), recursive=True)]
        excluded = {Path(p) for pat in source.exclude for p in glob.glob(str(root / pat), recursive=True)}
        files = sorted({p for p in found if p.is_file() and p not in excluded})
        if not files:
            raise DataError(
                f"data.sources[{index}]: no stdlib files match {source.include} under {root} — check "
                "include/exclude"
            )
        return files
    files: list[Path] = []
    for pattern in source.paths:
        if pattern.startswith(("s3://", "gs://")):
            files += _remote_files(index, pattern)
            continue
        p = Path(pattern).expanduser()
        full = p if p.is_absolute() else base_dir / p
        if glob.has_magic(str(pattern)):
            hits = sorted(Path(h) for h in glob.glob(str(full), recursive=True) if Path(h).is_file())
            if not hits:
                raise DataError(
                    f"data.sources[{index}]: no files match {pattern!r} (looked in {full.parent}) — check "
                    "the path"
                )
            files += hits
        elif full.is_file():
            files.append(full)
        else:
            raise DataError(
                f"data.sources[{index}]: file {pattern!r} not found (looked for {full}) — check the path"
            )
    seen: set[Path] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def remote_cache_root() -> Path:
    from .prepare import default_cache_root

    return default_cache_root().parent / "remote"


def _remote_files(index: int, pattern: str) -> list[Path]:
    """List ``s3://bucket/prefix/*.txt`` (glob on object names) and stream each object into the
    local cache (temp name, then rename). Returns the local copies in key order."""
    import fnmatch
    import os

    from ..store.base import open_store, split_uri

    scheme = pattern.split("://", 1)[0]
    bucket, key_pattern = split_uri(pattern)
    magic = next((i for i, ch in enumerate(key_pattern) if ch in "*?["), None)
    base = (
        key_pattern[:magic].rsplit("/", 1)[0]
        if magic is not None
        else key_pattern.rsplit("/", 1)[0]
        if "/" in key_pattern
        else ""
    )
    store = open_store(f"{scheme}://{bucket}")
    keys = (
        [k for k in store.list_keys(base) if fnmatch.fnmatchcase(k, key_pattern)]
        if magic is not None
        else [key_pattern]
    )
    if not keys:
        raise DataError(f"data.sources[{index}]: no objects match {pattern!r} — check the bucket and prefix")
    out = []
    for key in keys:
        dst = remote_cache_root() / scheme / bucket / key
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
        try:
            store.get_file(key, tmp)
        except FileNotFoundError:
            raise DataError(
                f"data.sources[{index}]: {scheme}://{bucket}/{key} not found — check the path"
            ) from None
        os.replace(tmp, dst)
        out.append(dst)
    return out


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def read_documents(
    index: int, source: FilesSource | StdlibSource, files: list[Path], sft: bool
) -> Iterator[Doc]:
    fmt = "text" if isinstance(source, StdlibSource) else source.format
    split_on = "file" if isinstance(source, StdlibSource) else source.split_on
    for path in files:
        if fmt == "jsonl":
            yield from _jsonl_docs(index, source, path, sft)
            continue
        if sft:
            raise DataError(
                f"data.sources[{index}]: the sft objective needs JSONL sources with prompt/response fields — "
                "set format: jsonl"
            )
        text = _read_text(path)
        if split_on == "file":
            yield Doc(text)
        elif split_on == "line":
            yield from (Doc(line) for line in text.splitlines())
        else:
            yield from (Doc(part.strip("\n")) for part in text.replace("\r\n", "\n").split("\n\n"))


def _jsonl_docs(index: int, source: FilesSource, path: Path, sft: bool) -> Iterator[Doc]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg}) — fix the line or remove it"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line")
            if sft:
                p, r = obj.get(source.prompt_field), obj.get(source.response_field)
                if not isinstance(p, str) or not isinstance(r, str):
                    raise DataError(
                        f"{path}:{lineno}: needs string fields {source.prompt_field!r} and "
                        f"{source.response_field!r} — set data.sources[{index}].prompt_field/response_field"
                    )
                yield Doc(p + r, p, r)
            else:
                t = obj.get(source.field)
                if not isinstance(t, str):
                    raise DataError(
                        f"{path}:{lineno}: no string field {source.field!r} — set data.sources[{index}].field"
                    )
                yield Doc(t)


def content_digest(files: list[Path]) -> str:
    """SHA-256 over the files' contents in order (names don't matter, order does)."""
    h = hashlib.sha256()
    for f in files:
        fh = hashlib.sha256()
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                fh.update(chunk)
        h.update(fh.digest())
    return h.hexdigest()
