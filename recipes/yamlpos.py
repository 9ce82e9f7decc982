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


# Bounds that keep any input cheap: a document this small parses in milliseconds, and aliases
# ("billion laughs") may not expand it past MAX_NODES — every later walk (positions, pydantic,
# model_dump) pays for the expanded tree, not the text.
MAX_BYTES = 256 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 64

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~5x faster than the pure-Python parser


class TooComplex(yaml.YAMLError):
    """The document is over a size, node, depth or alias-expansion bound (the message says which)."""

    def __init__(self, message: str, mark: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


def load(
    text: str, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> tuple[object, Positions]:
    """Parse one YAML document (safe loader). Raises ``yaml.YAMLError`` on bad syntax and
    :class:`TooComplex` past the bounds — before anything is expanded."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise TooComplex(
            f"the file is {size / 1024:.0f} KiB; at most {max_bytes // 1024} KiB is read — keep large data "
            "in files the recipe points to"
        )
    _check_events(text, max_nodes, max_depth)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Positions()
        _check_expansion(node, max_nodes, max_depth)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    pos = Positions()
    keys = yaml.constructor.SafeConstructor()
    _walk(node, (), pos, keys)
    return data, pos


def _check_events(text: str, max_nodes: int, max_depth: int) -> None:
    """Count nodes and nesting on the event stream, so a huge or deep document stops early."""
    loader = _Loader(text)
    nodes = depth = 0
    try:
        while loader.check_event():
            ev = loader.get_event()
            if isinstance(
                ev, (yaml.ScalarEvent, yaml.AliasEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
            ):
                nodes += 1
                if nodes > max_nodes:
                    raise TooComplex(
                        f"more than {max_nodes:,} YAML nodes — a recipe is small; keep large data in files",
                        _evmark(ev),
                    )
            if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > max_depth:
                    raise TooComplex(
                        f"nested more than {max_depth} levels deep — flatten the YAML", _evmark(ev)
                    )
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


def _evmark(ev) -> tuple[int, int] | None:
    m = getattr(ev, "start_mark", None)
    return (m.line + 1, m.column + 1) if m is not None else None


def _check_expansion(root: yaml.Node, max_nodes: int, max_depth: int) -> None:
    """Aliases share nodes; count the tree they expand to (memoised per node, iteratively) and
    refuse a cycle (``a: &x [*x]``) or an expansion past the bounds."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        k = id(node)
        kids = _children(node)
        if done:
            on_path.discard(k)
            size[k] = 1 + sum(size[id(c)] for c in kids)
            height[k] = 1 + max((height[id(c)] for c in kids), default=0)
            if size[k] > max_nodes:
                raise TooComplex(
                    f"aliases expand the document past {max_nodes:,} nodes — repeat less through anchors (&) "
                    "and aliases (*)",
                    _mark(node),
                )
            if height[k] > max_depth:
                raise TooComplex(
                    f"aliases nest the document more than {max_depth} levels deep — flatten the YAML",
                    _mark(node),
                )
            continue
        if k in size:
            continue
        if k in on_path:
            raise TooComplex(
                "an alias refers to the node that contains it (a cycle) — an anchor (&) cannot be used "
                "inside itself",
                _mark(node),
            )
        on_path.add(k)
        stack.append((node, True))
        for c in kids:
            if id(c) in on_path:
                raise TooComplex(
                    "an alias refers to the node that contains it (a cycle) — an anchor (&) cannot be used "
                    "inside itself",
                    _mark(c),
                )
            if id(c) not in size:
                stack.append((c, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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
