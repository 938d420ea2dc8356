"""YAML for operator-edited files (policy.yaml, pod templates), with limits.

`yaml.safe_load` builds no Python objects from tags, but it still trusts the document's size
and shape. A 664-byte "billion laughs" file (nine anchors, each a list of nine aliases of the
one before) loads as a small graph of shared lists; whatever walks it afterwards (schema
validation, an error message that prints the value, a JSON dump to the apiserver) expands it to
9^9 leaves and the daemon runs out of memory. Other shapes hurt the loader itself: a deep
`[[[[...` exhausts Python's recursion (PyYAML's composer recurses), and YAML silently keeps
the last of two equal keys, so a duplicated `maxInstances:` hides the first value.

`load` refuses, while composing and before any object is built:
- files over `MAX_BYTES`;
- more than `MAX_ALIASES` aliases (`*name`), and an alias inside its own anchor;
- nesting deeper than `MAX_DEPTH`;
- more than `MAX_NODES` nodes once aliases are expanded (counted, never expanded).
Each refusal is an `UnsafeYaml` with the 1-based line where it was noticed. Duplicate keys are
collected (not raised) so the caller can report them beside its own errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20  # far above any real policy.yaml or pod template
MAX_ALIASES = 16  # the policy needs none; a few let operators share a heartbeat block
MAX_DEPTH = 32  # policy.yaml nests 5 deep, a pod template about 10
MAX_NODES = 10_000  # with aliases expanded; a kind's policy is about 30, a template 100

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UnsafeYaml(ValueError):
    """The document exceeds a limit; `line` is 1-based (None: the file as a whole)."""

    def __init__(self, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


@dataclass(frozen=True)
class DuplicateKey:
    path: tuple[str, ...]  # keys from the root to the duplicated one, e.g. ("kinds", "Thing")
    first_line: int
    line: int


@dataclass(frozen=True)
class Document:
    data: Any  # the constructed value (None for an empty document)
    root: Node | None  # the composed node tree, for mapping errors back to lines
    duplicates: tuple[DuplicateKey, ...]


def read_bounded(path: Path | str, limit: int = MAX_BYTES) -> bytes:
    """The file's bytes; UnsafeYaml past `limit` (reads at most `limit + 1` bytes, so a huge
    file or a device like /dev/zero costs nothing). OSError as open() raises it."""
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise UnsafeYaml(f"file is larger than {_size(limit)}: refused", None)
    return raw


def load(text: str | bytes) -> Document:
    """Compose with the limits above, then construct as `yaml.safe_load` does. Raises
    UnsafeYaml for a limit and yaml.YAMLError for a syntax error."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_BYTES:
        raise UnsafeYaml(f"document is larger than {_size(MAX_BYTES)}: refused", None)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return Document(data, root, tuple(loader.duplicates))


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


def _line(node_or_event: Any) -> int:
    return int(node_or_event.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer counts aliases, depth and expanded nodes, and notes
    duplicate keys with the path that leads to them."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.duplicates: list[DuplicateKey] = []
        self._path: list[str | None] = []  # one entry per node being composed
        self._expanded: dict[int, int] = {}  # id(node) -> node count with aliases expanded
        self._total = 0  # nodes of the whole document so far, aliases expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise UnsafeYaml(
                    f"more than {MAX_ALIASES} aliases (*{event.anchor}): refused "
                    "(a small file can expand to billions of values)",
                    _line(event),
                )
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:
                raise UnsafeYaml(
                    f"alias *{event.anchor} is inside its own anchor: a recursive value",
                    _line(event),
                )
            self._add(self._expanded[id(node)], event)
            return node
        if len(self._path) >= MAX_DEPTH:
            raise UnsafeYaml(f"nested deeper than {MAX_DEPTH} levels: refused", _line(event))
        self._path.append(_label(index))
        try:
            node = super().compose_node(parent, index)
            self._count(node)
        finally:
            self._path.pop()
        return node

    def _count(self, node: Node) -> None:
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
            self._note_duplicates(node)
        else:
            children = []
        self._expanded[id(node)] = 1 + sum(self._expanded[id(child)] for child in children)
        self._add(1, node)

    def _add(self, nodes: int, where: Any) -> None:
        """Count `nodes` more values in the expanded document; refuse past MAX_NODES, as
        soon as it happens (not once a huge list has been composed)."""
        self._total += nodes
        if self._total > MAX_NODES:
            raise UnsafeYaml(
                f"more than {MAX_NODES} values once aliases are expanded: refused", _line(where)
            )

    def _note_duplicates(self, node: MappingNode) -> None:
        first: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue  # `<<: *base` merges; complex keys fail when constructed
            if key.value in first:
                where = (*(p for p in self._path if p is not None), key.value)
                self.duplicates.append(DuplicateKey(where, first[key.value], _line(key)))
            else:
                first[key.value] = _line(key)


def _label(index: Any) -> str | None:
    """The path entry of a node composed at `index`: a mapping value's key text, a list
    item's position; None for a mapping key and the root."""
    if isinstance(index, ScalarNode):
        return str(index.value)
    if isinstance(index, int):
        return str(index)
    return None
