"""YAML parsing that remembers where every key and value stands (line/column, 1-based)."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

Path_ = tuple  # a path of mapping keys and list indexes into the parsed document


@dataclass
class Positions:
    """``values[path]`` is where the value at ``path`` starts; ``keys[path]`` where its key is."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path_, tuple[int, int]]] = field(default_factory=list)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load(text: str) -> tuple[object, Positions]:
    """Parse one YAML document (safe loader). Raises ``yaml.YAMLError`` on bad syntax."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Positions()
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    pos = Positions()
    keys = yaml.constructor.SafeConstructor()
    _walk(node, (), pos, keys)
    return data, pos


def _walk(node: yaml.Node, path: Path_, pos: Positions, keys: yaml.constructor.SafeConstructor) -> None:
    pos.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            try:
                key = keys.construct_object(key_node, deep=True)
            except yaml.YAMLError:
                continue
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue
            sub = path + (key,)
            if key in seen:
                pos.duplicates.append((sub, _mark(key_node)))
            seen.add(key)
            pos.keys[sub] = _mark(key_node)
            _walk(value_node, sub, pos, keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), pos, keys)
