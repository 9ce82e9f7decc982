"""How a node gets spotrain: sync this source checkout (when spotrain runs from one) or install
the released package. I/O at the edge: reads the checkout to fingerprint it."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import spotrain
from spotrain.launcher.compiler import Source


def package_folders(root: Path) -> list[str]:
    """The checkout's top-level package folders, as ``pyproject.toml`` declares them (the one list)."""
    conf = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return sorted(set(conf["tool"]["setuptools"]["package-dir"].values()))


def checkout_root() -> Path | None:
    root = Path(spotrain.__file__).resolve().parent.parent
    py = root / "pyproject.toml"
    if py.is_file() and 'name = "spotrain"' in py.read_text(encoding="utf-8"):
        return root
    return None


def digest(root: Path) -> str:
    """Content hash of what the node installs: the packages, pyproject and constraints."""
    h = hashlib.sha256()
    files = [root / "pyproject.toml", root / "constraints.txt"]
    for pkg in package_folders(root):
        files += sorted(
            p
            for p in (root / pkg).rglob("*")
            if p.is_file() and p.suffix in (".py", ".yaml", ".toml", ".txt") and "__pycache__" not in p.parts
        )
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def node_source() -> Source:
    root = checkout_root()
    if root is None:
        return Source(version=spotrain.__version__)
    return Source(
        version=spotrain.__version__,
        path=str(root),
        digest=digest(root),
        constraints="constraints.txt" if (root / "constraints.txt").is_file() else None,
    )
