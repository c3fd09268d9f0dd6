"""The YAML loader of params files: bounded (`MAX_YAML_NODES` once aliases expand), duplicate keys
refused, YAML 1.2 booleans."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dataops.config.base import MAX_YAML_NODES
from dataops.errors import ConfigError, clip

_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader refusing duplicate keys, with YAML 1.2 booleans."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    continue  # `<<: *base` is a merge key (flattened below), not a key
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _Refused(
                        f"duplicate key {clip(repr(key))} at line {line} (first at line {seen[key]}); DVC refuses such a file too — keep one"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    pass


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _expanded_nodes(data: Any, limit: int) -> int:
    """Nodes of `data` with every shared (aliased) object counted each time it appears; stops
    early past `limit`; ValueError on a cycle (a recursive alias)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(obj: Any) -> int:
        if not isinstance(obj, dict | list):
            return 1
        key = id(obj)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError("a recursive alias (a node that contains itself)")
        active.add(key)
        children = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        sizes[key] = total
        return total

    return size(data)


def load_yaml(text: str, path: str | Path = "params.yaml") -> Any:
    """Parse params YAML text with the bounded, strict loader; ConfigError on anything refused."""
    path = Path(path)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path}: not valid YAML: {clip(err.problem or err.context or 'syntax error')}{where}"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {clip(str(err).splitlines()[0])}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    try:
        n = _expanded_nodes(data, MAX_YAML_NODES)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}; write the values out") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    if n > MAX_YAML_NODES:
        raise ConfigError(
            f"{path}: its anchors and aliases expand to more than {MAX_YAML_NODES} values; a params file is far smaller — remove the aliases"
        )
    return data
