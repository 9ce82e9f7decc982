"""Layers point down: the CLI (launcher/cli) is the top and nothing else imports it; the other
top-level packages form no import cycle (recipes at the bottom, then pricing, launcher's backends
and compiler, jobs, tui). Read from the source (every import, including those inside functions)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("recipes", "pricing", "jobs", "launcher", "tui", "serving", "spotrain")


def test_the_package_list_is_declared_once_and_complete():
    """pyproject.toml is the one list of packages: every folder with an ``__init__.py`` under a
    declared top-level folder is a declared package (a new concern's folder is not left out of the
    wheel), and what a node installs is fingerprinted from the same declaration."""
    import tomllib

    from spotrain.launcher.source import package_folders

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = conf["package-dir"]
    assert package_folders(ROOT) == sorted(FOLDERS)
    found = set()
    for pkg, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            sub = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in sub:
                found.add(".".join((pkg, *sub)))
    assert found == set(conf["packages"])


def unit_of_file(rel: Path) -> str:
    if rel.parts[0] == "launcher" and rel.parts[1] == "cli":
        return "launcher.cli"
    if rel.parts[0] == "spotrain" and rel.name == "__main__.py":
        return "entry"  # `python -m spotrain`: the CLI's entry point
    return rel.parts[0]


def unit_of_module(mod: str) -> str | None:
    parts = mod.split(".")
    if parts[0] != "spotrain":
        return None
    if len(parts) >= 3 and parts[1] == "launcher" and parts[2] == "cli":
        return "launcher.cli"
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS[:-1] else "spotrain"


def imports() -> dict[str, set[tuple[str, str]]]:
    """unit → {(imported unit, importing file)}"""
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for folder in FOLDERS:
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT)
            u = unit_of_file(rel)
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    v = unit_of_module(m)
                    if v is not None and v != u:
                        out[u].add((v, str(rel)))
    return out


def test_nothing_but_the_entry_point_imports_the_cli():
    offenders = sorted(
        f
        for u, edges in imports().items()
        if u not in ("launcher.cli", "entry")
        for v, f in edges
        if v == "launcher.cli"
    )
    assert offenders == [], f"these modules import launcher/cli (the top layer): {offenders}"


def test_no_import_cycle_between_top_level_packages():
    graph = {u: {v for v, _ in edges} for u, edges in imports().items()}
    seen: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        seen[u] = 1
        path.append(u)
        for v in sorted(graph.get(u, ())):
            if seen.get(v) == 1:
                return path[path.index(v) :] + [v]
            if v not in seen and (cycle := visit(v)):
                return cycle
        seen[u] = 2
        path.pop()
        return None

    for u in sorted(graph):
        if u not in seen and (cycle := visit(u)):
            where = sorted(f for v, f in imports()[cycle[0]] if v == cycle[1])
            raise AssertionError(f"import cycle {' → '.join(cycle)} (e.g. {where[:3]})")


def test_the_database_is_written_only_by_its_data_access_modules():
    """Every write goes through ``jobs/store.py`` (jobs, attempts, ledger, events) or
    ``jobs/schedules.py`` (schedule rows and their runs); nothing else opens a session."""
    allowed = {Path("jobs/store.py"), Path("jobs/schedules.py"), Path("jobs/db.py")}
    offenders = []
    for folder in FOLDERS:
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT)
            if rel in allowed:
                continue
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "session"
                    and isinstance(node.ctx, ast.Load)
                ):
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_every_command_is_found_under_its_own_name():
    """The CLI imports a command's module only when that command runs: each name it lists must be
    the name the command was declared with (a job's controller runs as the hidden `_controller`)."""
    import click

    from spotrain.launcher.cli.app import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None and cmd.name == name, name
    assert "_controller" in COMMANDS and cli.get_command(ctx, "nope") is None
