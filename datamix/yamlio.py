"""Strict, bounded YAML reading for every YAML file the project takes (recipes, `--set` values,
trainer configs, catalogs).

Responsible for two things PyYAML's `safe_load` does not do:
- equal keys in one mapping are an error (PyYAML silently keeps the last one), and
- a document may not expand to more than `MAX_NODES` values. Aliases make YAML a compression
  format: nine levels of nine `*a` references ("billion laughs") are 387M values once expanded.
  PyYAML itself builds them as shared references, cheaply; the damage is done by whatever walks the
  result (validation, error messages, hashing). The expanded size is counted on the composed node
  graph (each node's size once, memoised), before anything is constructed, so the check costs time
  proportional to the file, not to the expansion.
Deeply nested documents (PyYAML's composer recurses) fail as a `YamlError` too, not a
`RecursionError`.

Torch-free and dependency-free beyond PyYAML: the trainer uses it as well.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_NODES", "YamlError", "loads"]

MAX_NODES = 100_000


class YamlError(yaml.YAMLError):
    """Not valid YAML, a duplicate key, or a document too large once its aliases are expanded."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse equal keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping below says so
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def expanded_size(root: yaml.Node, limit: int = MAX_NODES) -> int:
    """Number of values `root` stands for with every alias expanded; stops counting past `limit`.

    Iterative post-order walk over the node graph (aliases are shared nodes), each node's size
    computed once."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = list(node.value)
        if children_done:
            total = 1
            for child in children:
                total += size[id(child)]
                if total > limit:
                    return total
            size[id(node)] = total
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


def loads(text: str, *, max_nodes: int = MAX_NODES) -> Any:
    """Parse one YAML document strictly (see the module docstring); raise `YamlError` with the reason."""
    loader = _StrictLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlError("nested too deeply to read") from None
        if node is None:
            return None
        n = expanded_size(node, max_nodes)
        if n > max_nodes:
            raise YamlError(
                f"expands to more than {max_nodes:,} values once its aliases (*name) are expanded; "
                "a recipe or config is never that large"
            )
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise YamlError("nested too deeply to read") from None
    finally:
        loader.dispose()
