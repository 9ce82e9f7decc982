"""Walk the recipe's pydantic models along a path: which type sits at ``data.sources.0.paths``?

Used to type command-line overrides and to suggest field names for typos.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def strip(tp: Any) -> Any:
    """Remove ``Annotated`` wrappers."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def union_members(tp: Any) -> list[Any]:
    tp = strip(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return [strip(a) for a in get_args(tp)]
    return [tp]


def field_of(model: type[BaseModel], key: object):
    """The FieldInfo for ``key`` (field name or alias) or None."""
    if not isinstance(key, str):
        return None
    if key in model.model_fields:
        return model.model_fields[key]
    for info in model.model_fields.values():
        if info.alias == key:
            return info
    return None


def field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _tag(model: type[BaseModel]) -> object:
    info = model.model_fields.get("type")
    return None if info is None else info.default


def _resolve(tp: Any, data: object, loc_next: object) -> tuple[Any, bool]:
    """Pick a concrete member of a union. Returns (type, consumed_tag)."""
    members = [m for m in union_members(tp) if m is not type(None)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) > 1:
        for m in models:
            if _tag(m) == loc_next:
                return m, True
        want = data.get("type") if isinstance(data, dict) else None
        for m in models:
            if _tag(m) == want:
                return m, False
        return None, False
    if len(members) == 1:
        return members[0], False
    return tp, False


def type_at(root: type[BaseModel], loc: tuple, data: object = None) -> Any:
    """The (stripped) annotation at ``loc`` below ``root``; None if the path leaves the schema.

    ``loc`` may be a pydantic error location (which contains union tags) or a plain data path.
    """
    tp: Any = root
    i = 0
    loc = tuple(loc)
    while i < len(loc):
        el = loc[i]
        tp, consumed = _resolve(tp, data, el)
        if tp is None:
            return None
        if consumed:
            i += 1
            continue
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = field_of(tp, el)
            if info is None:
                return None
            tp = info.annotation
            data = data.get(el) if isinstance(data, dict) else None
        elif origin in (list, tuple) and isinstance(el, int):
            args = get_args(tp)
            tp = (
                args[0]
                if origin is list or len(args) == 2 and args[1] is Ellipsis
                else (args[el] if el < len(args) else None)
            )
            data = data[el] if isinstance(data, list) and -len(data) <= el < len(data) else None
        elif origin is dict:
            tp = get_args(tp)[1] if get_args(tp) else Any
            data = data.get(el) if isinstance(data, dict) else None
        else:
            return None
        i += 1
    tp, _ = _resolve(tp, data, None)
    return tp


def accepted_python_types(tp: Any) -> set[type]:
    """The plain Python types a value may have for annotation ``tp`` (before pydantic coercion)."""
    out: set[type] = set()
    for m in union_members(tp):
        origin = get_origin(m)
        if m is type(None):
            out.add(type(None))
        elif origin is Literal:
            out.update(type(a) for a in get_args(m))
        elif origin in (list, tuple):
            out.add(list)
        elif origin is dict or (isinstance(m, type) and issubclass(m, BaseModel)):
            out.add(dict)
        elif m is float:
            out.update({float, int})
        elif isinstance(m, type):
            out.add(m)
    return out
