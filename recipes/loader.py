"""Load a recipe file plus ``dotted.key=value`` overrides, and report every problem at once.

Each problem becomes one line ``FILE:LINE:COL: field.path: what is wrong — what to do``;
a problem that comes from an override names the override instead of a file position.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from spotrain.errors import RecipeError

from . import schema_walk, yamlpos
from .schema import Recipe
from .schema.recipe import consistency_problems


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and where relative paths in it resolve from."""

    recipe: Recipe
    source: Path | None
    base_dir: Path

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def format_path(loc: tuple) -> str:
    out = ""
    for el in loc:
        out += f"[{el}]" if isinstance(el, int) else (f".{el}" if out else str(el))
    return out or "(top level)"


def parse_override(text: str) -> tuple[tuple, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError([f"override {text!r}: write it as dotted.key=value (e.g. train.steps=200)"])
    path = tuple(int(p) if p.lstrip("-").isdigit() else p for p in key.split("."))
    if any(isinstance(p, int) and p < 0 for p in path):
        raise RecipeError(
            [
                f"override {text!r}: list indexes count from 0 (negative ones are not accepted) — e.g. "
                "data.sources.0.paths=..."
            ]
        )
    return path, value


def typed_value(raw: str, path: tuple, data: object):
    """Type an override value by the schema: YAML syntax, but kept as text where the field is text."""
    try:
        parsed = yamlpos.load(raw)[0] if raw.strip() else ""
    except yamlpos.TooComplex as exc:
        raise RecipeError([f"override {format_path(path)}: {exc.message}"]) from None
    except yaml.YAMLError:
        parsed = raw
    tp = schema_walk.type_at(Recipe, path, data)
    if tp is None:
        return parsed
    accepted = schema_walk.accepted_python_types(tp)
    if type(parsed) in accepted or (
        isinstance(parsed, bool) is False and isinstance(parsed, int) and float in accepted
    ):
        return parsed
    if str in accepted:
        return raw
    return parsed


def apply_overrides(data: dict, overrides: list[str]) -> dict[tuple, str]:
    """Set each override into ``data`` in place; returns {path: override text} for error reports."""
    origin: dict[tuple, str] = {}
    for text in overrides:
        path, raw = parse_override(text)
        node = data
        for i, el in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(node, dict):
                if not isinstance(node.get(el), (dict, list)):
                    node[el] = [] if isinstance(nxt, int) else {}
                node = node[el]
            elif isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node):
                node = node[el]
            else:
                raise RecipeError(
                    [f"override {text!r}: {format_path(path[: i + 1])} does not exist in the recipe"]
                )
        last = path[-1]
        value = typed_value(raw, path, data)
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
            node[last] = value
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            raise RecipeError([f"override {text!r}: {format_path(path)} is not an existing list index"])
        origin[path] = text
    return origin


def _data_path(loc: tuple, data: object) -> tuple:
    """Drop union tags from a pydantic location so it indexes the raw document."""
    out = []
    for el in loc:
        if isinstance(data, dict) and el in data:
            data = data[el]
            out.append(el)
        elif isinstance(data, list) and isinstance(el, int) and 0 <= el < len(data):
            data = data[el]
            out.append(el)
        elif isinstance(data, dict) and isinstance(el, str):
            continue  # a discriminator tag
        else:
            break
    return tuple(out)


def _display_path(loc: tuple, data: object) -> tuple:
    """The error location as the user would write it: union tags dropped."""
    out = []
    for el in loc:
        if isinstance(data, dict) and el in data:
            data = data[el]
        elif isinstance(data, dict) and isinstance(el, str) and data.get("type") == el:
            continue
        elif isinstance(data, list) and isinstance(el, int) and 0 <= el < len(data):
            data = data[el]
        else:
            data = None
        out.append(el)
    return tuple(out)


def _hint(err: dict, data_path: tuple, data: object) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        key = data_path[-1] if data_path else err["loc"][-1]
        parent = schema_walk.type_at(Recipe, err["loc"][:-1], data)
        names = (
            schema_walk.field_names(parent)
            if isinstance(parent, type) and issubclass(parent, BaseModel)
            else []
        )
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        if close:
            return f"unknown key '{key}' — did you mean '{close[0]}'?"
        return f"unknown key '{key}' — valid keys here: {', '.join(names)}"
    if kind == "missing":
        return "required field is missing — add it"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    if (
        kind not in ("value_error", "assertion_error")
        and "input" in err
        and not isinstance(err["input"], (dict, list))
    ):
        msg += f" (got {err['input']!r})"
    return msg


def _where(
    file: str, data_path: tuple, pos: yamlpos.Positions, overrides: dict[tuple, str], key: bool
) -> str:
    for n in range(len(data_path), -1, -1):
        prefix = data_path[:n]
        if prefix in overrides:
            return f"override {overrides[prefix]!r}"
        table = pos.keys if key and n == len(data_path) else pos.values
        if prefix in table:
            line, col = table[prefix]
            return f"{file}:{line}:{col}"
        if prefix in pos.keys:
            line, col = pos.keys[prefix]
            return f"{file}:{line}:{col}"
    return file


def validate_data(
    data: object, file: str, pos: yamlpos.Positions, overrides: dict[tuple, str]
) -> tuple[Recipe | None, list[str]]:
    """Validate a parsed document; returns the recipe or every problem as a line."""
    problems = [
        f"{file}:{line}:{col}: {format_path(path)}: duplicate key — keep one"
        for path, (line, col) in pos.duplicates
    ]
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        return None, problems + [
            f"{file}:1:1: a recipe is a YAML mapping (name:, data:, model:, ...), this file is {what}"
        ]
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            dpath = _data_path(err["loc"], data)
            where = _where(file, dpath, pos, overrides, key=err["type"] == "extra_forbidden")
            problems.append(
                f"{where}: {format_path(_display_path(err['loc'], data))}: {_hint(err, dpath, data)}"
            )
        return None, problems
    for path, message in consistency_problems(recipe):
        problems.append(f"{_where(file, path, pos, overrides, key=False)}: {format_path(path)}: {message}")
    return (recipe if not problems else None), problems


def read_document(path: Path) -> tuple[object, yamlpos.Positions]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{path}: no such recipe file — check the path"]) from None
    except IsADirectoryError:
        raise RecipeError([f"{path}: is a folder — give a recipe .yaml file"]) from None
    except UnicodeDecodeError as exc:
        raise RecipeError(
            [f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}) — save it as UTF-8"]
        ) from None
    try:
        return yamlpos.load(text)
    except yamlpos.TooComplex as exc:
        where = f"{path}:{exc.mark[0]}:{exc.mark[1]}" if exc.mark else str(path)
        raise RecipeError([f"{where}: {exc.message}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError([f"{where}: YAML syntax error: {problem} — fix the YAML syntax"]) from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedRecipe:
    """Read, override and validate a recipe. Raises :class:`RecipeError` listing every problem."""
    path = Path(path)
    data, pos = read_document(path)
    origin = apply_overrides(data, list(overrides)) if isinstance(data, dict) else {}
    recipe, problems = validate_data(data, str(path), pos, origin)
    if problems:
        raise RecipeError(problems)
    return LoadedRecipe(recipe=recipe, source=path.resolve(), base_dir=path.resolve().parent)


REDACTED = "<redacted>"


def public_dump(recipe: Recipe) -> dict:
    """The recipe as JSON-able data with every secret's value replaced by ``<redacted>`` (a null
    secret — copied from the launching shell — stays null): what may be shown, logged or stored."""
    data = recipe.model_dump(mode="json", by_alias=True)
    data["secrets"] = {k: (None if v is None else REDACTED) for k, v in data.get("secrets", {}).items()}
    return data


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML, secrets redacted (see :func:`public_dump`)."""
    return yaml.safe_dump(public_dump(recipe), sort_keys=False, allow_unicode=True)


def absolute_recipe(loaded: LoadedRecipe) -> Recipe:
    """The recipe with every local path made absolute (so it runs from any folder)."""
    d = loaded.recipe.model_dump(mode="json", by_alias=True)

    def local(p: str | None, must_exist: bool) -> str | None:
        if p is None:
            return None
        q = loaded.resolve(p)
        return str(q) if (q.exists() or not must_exist) else p

    for src in d["data"]["sources"]:
        if src["type"] == "files":
            src["paths"] = [local(p, False) for p in src["paths"]]
    tok = d["data"]["tokenizer"]
    if tok["type"] == "pretrained":
        tok["path"] = local(tok["path"], True)
    d["model"]["from"] = local(d["model"].get("from"), True)
    d["eval"]["prompts_file"] = local(d["eval"].get("prompts_file"), False)
    d["storage"]["data_cache"] = local(d["storage"].get("data_cache"), False)
    return Recipe.model_validate(d)
