"""The tunable keys of `params.yaml` as trigger-form fields, and applying a run's values to the file."""

from __future__ import annotations

import io
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.config import Params, load_params_data, load_yaml, parse_params
from dataops.errors import ConfigError

SEP = "__"  # form field name = key path joined with SEP ("sample__num_examples"); dots are also accepted in a run's conf


@dataclass(frozen=True)
class TunableKey:
    """One scalar leaf of `params.yaml` that a run may override."""

    path: tuple[str, ...]
    value: Any
    schema: dict[str, Any]

    @property
    def name(self) -> str:
        return SEP.join(self.path)

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a (sub)schema with `$ref`s resolved and `anyOf` flattened."""
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return [alt for option in schema["anyOf"] for alt in _resolve(option, defs)]
    return [schema]


def _child(schema: dict[str, Any], key: str, defs: dict[str, Any]) -> dict[str, Any]:
    for alt in _resolve(schema, defs):
        props = alt.get("properties") or {}
        if key in props:
            return props[key]
        extra = alt.get("additionalProperties")
        if isinstance(extra, dict):
            return extra
    return {}


_JSON_TYPE = {bool: "boolean", int: "integer", float: "number", str: "string"}
_KEEP = (
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "maxLength",
    "minLength",
)

# Bounds of every form field (and of a run's conf, re-checked by `check_value`).
MAX_STRING = 200  # characters of a string value, unless params.yaml's schema says fewer
JS_SAFE_INT = 2**53 - 1  # the form's number widget is a JavaScript number
# No C0/C1 control characters, no bidi embedding/override/isolate (U+202A-202E, U+2066-2069).
SAFE_TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$"
_UNSAFE_CHAR = re.compile("[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]")


def _leaf_schema(schema: dict[str, Any], value: Any, defs: dict[str, Any]) -> dict[str, Any]:
    alts = _resolve(schema, defs) if schema else []
    types: list[str] = []
    out: dict[str, Any] = {}
    for alt in alts:
        t = alt.get("type")
        if "const" in alt and t is None:
            t = _JSON_TYPE.get(type(alt["const"]))
            out.setdefault("enum", []).append(alt["const"])
        if isinstance(t, str) and t not in types:
            types.append(t)
        for k in _KEEP:
            if k in alt and k not in out:
                out[k] = alt[k]
        if "description" in alt and "description" not in out:
            out["description"] = alt["description"]
    if not types:
        types = ["null"] if value is None else [_JSON_TYPE.get(type(value), "string")]
    if "integer" in types and "number" not in types and isinstance(value, float):
        types.append("number")
    if value is None and "null" not in types:
        types.append("null")
    if "null" in types and "enum" in out:
        out["enum"] = [*out["enum"], None]
    out["type"] = types[0] if len(types) == 1 else types
    if "description" not in out and schema.get("description"):
        out["description"] = schema["description"]
    return _bounded(out)


def _bounded(out: dict[str, Any]) -> dict[str, Any]:
    """Caps a leaf's schema: string length and characters, integer range; the range is also said
    in the description, since the form's number widget moves an out-of-range value to the bound."""
    types = out["type"] if isinstance(out["type"], list) else [out["type"]]
    if "string" in types and "enum" not in out:
        out["maxLength"] = min(int(out.get("maxLength", MAX_STRING)), MAX_STRING)
        out.setdefault("pattern", SAFE_TEXT_PATTERN)
    if "integer" in types or "number" in types:
        stated = [
            b for b in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if b in out
        ]
        if stated:
            lo = out.get("minimum", out.get("exclusiveMinimum"))
            hi = out.get("maximum", out.get("exclusiveMaximum"))
            lo_s = "" if lo is None else ("> " if "exclusiveMinimum" in out else "≥ ") + str(lo)
            hi_s = "" if hi is None else ("< " if "exclusiveMaximum" in out else "≤ ") + str(hi)
            rng = ", ".join(x for x in (lo_s, hi_s) if x)
            desc = out.get("description", "")
            out["description"] = f"{desc} Allowed: {rng}.".strip()
        if "integer" in types and "number" not in types:
            out.setdefault("minimum", -JS_SAFE_INT)
            out.setdefault("maximum", JS_SAFE_INT)
    return out


def tunable_keys(data: dict[str, Any]) -> list[TunableKey]:
    """Every scalar leaf reachable through mappings (lists are not tunable), with its JSON Schema."""
    root = Params.model_json_schema(by_alias=True)
    defs = root.get("$defs", {})
    keys: list[TunableKey] = []

    def walk(node: Any, schema: dict[str, Any], path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, _child(schema, str(k), defs), (*path, str(k)))
        elif isinstance(node, list):
            return
        else:
            keys.append(TunableKey(path=path, value=node, schema=_leaf_schema(schema, node, defs)))

    walk(data, root, ())
    return keys


def read_params_data(workspace: str | Path) -> dict[str, Any]:
    path = Path(workspace) / "params.yaml"
    data = load_params_data(path)  # bounded: size, aliases, duplicate keys
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def form_fields(workspace: str | Path) -> dict[str, dict[str, Any]]:
    """Field name → keyword arguments of `airflow.sdk.Param` (default, JSON Schema, title, section)."""
    fields: dict[str, dict[str, Any]] = {}
    for key in tunable_keys(read_params_data(workspace)):
        kwargs = dict(key.schema)
        kwargs["default"] = key.value
        kwargs["title"] = key.dotted
        kwargs["section"] = f"params.yaml: {key.path[0]}"
        fields[key.name] = kwargs
    return fields


def overrides_from_conf(
    conf: dict[str, Any] | None, workspace: str | Path
) -> dict[tuple[str, ...], Any]:
    """The params.yaml values a run's conf sets, by key path; unknown keys are a ConfigError."""
    known = {k.name: k.path for k in tunable_keys(read_params_data(workspace))}
    known.update({".".join(p): p for p in list(known.values())})
    schemas = {k.path: k.schema for k in tunable_keys(read_params_data(workspace))}
    out: dict[tuple[str, ...], Any] = {}
    unknown = []
    problems = []
    for name, value in (conf or {}).items():
        if name in known:
            out[known[name]] = value
            problems += check_value(known[name], value, schemas[known[name]])
        else:
            unknown.append(_shown(name))
    if unknown:
        raise ConfigError(
            f"run conf: unknown parameter(s) {sorted(unknown)}; the tunable keys of params.yaml are {sorted(k for k in known if SEP in k or '.' not in k)}"
        )
    if problems:
        raise ConfigError("run conf refused:\n" + "\n".join(problems))
    return out


def _shown(value: Any, limit: int = 60) -> str:
    """A value for an error message: unsafe characters escaped, length capped."""
    text = _UNSAFE_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(value))} characters)"


def check_value(path: tuple[str, ...], value: Any, schema: dict[str, Any]) -> list[str]:
    """What is wrong with a run's value for one key, by the bounds of the form's schema (the same
    checks the form makes, so a REST trigger cannot bypass them); empty when it is fine."""
    key = ".".join(path)
    if isinstance(value, (dict, list)):
        return [f"key '{key}': expected a single value, got a {type(value).__name__}"]
    out = []
    if isinstance(value, str):
        limit = int(schema.get("maxLength", MAX_STRING))
        if len(value) > limit:
            out.append(f"key '{key}': {len(value)} characters, at most {limit} are accepted")
        bad = _UNSAFE_CHAR.search(value)
        if bad:
            out.append(
                f"key '{key}': control or bidi-override character U+{ord(bad.group()):04X} at position {bad.start()} is not accepted"
            )
        pattern = schema.get("pattern")
        if not out and pattern and not re.search(pattern, value):
            out.append(f"key '{key}': {_shown(value)!r} does not match the pattern {pattern}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and value < lo:
            out.append(f"key '{key}': {value} is below the minimum {lo}")
        if hi is not None and value > hi:
            out.append(f"key '{key}': {value} is above the maximum {hi}")
        xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if xlo is not None and value <= xlo:
            out.append(f"key '{key}': {value} must be greater than {xlo}")
        if xhi is not None and value >= xhi:
            out.append(f"key '{key}': {value} must be less than {xhi}")
    return out


def check_tag_name(workspace: str | Path, dataset: str) -> None:
    """ConfigError unless `<dataset>-v1.0` is a valid git tag name (`git check-ref-format`)."""
    proc = subprocess.run(
        ["git", "check-ref-format", f"refs/tags/{dataset}-v1.0"],
        cwd=workspace,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigError(
            f"key 'dataset.name': {_shown(dataset)!r} cannot name a git tag "
            f"({_shown(dataset)}-v1.0 is refused by `git check-ref-format`); use letters, digits, '_', '-' and single dots"
        )


def apply_overrides(workspace: str | Path, overrides: dict[tuple[str, ...], Any]) -> list[str]:
    """Write `overrides` into `<workspace>/params.yaml` (comments and layout kept) after validating
    the result with `parse_params`; returns one line per changed key, empty when nothing changed."""
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import RoundTripRepresenter

    class NullRepresenter(RoundTripRepresenter):
        """Writes None as `null`. A subclass: `add_representer` is a class method, and on
        ruamel's own class it would change every round-trip dump in this process (DVC's
        `dvc.lock` among them)."""

    NullRepresenter.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    path = Path(workspace) / "params.yaml"
    rt = YAML()
    rt.Representer = NullRepresenter
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    doc = rt.load(path.read_text(encoding="utf-8"))
    name = overrides.get(("dataset", "name"), (doc.get("dataset") or {}).get("name"))
    changes = []
    for keypath, value in overrides.items():
        node = doc
        for k in keypath[:-1]:
            node = node[k]
        old = node.get(keypath[-1])
        same = old == value and isinstance(old, bool) == isinstance(value, bool)
        if not same:
            node[keypath[-1]] = value
            changes.append(f"{'.'.join(keypath)}: {old!r} -> {value!r}")
    if not changes:
        if name is not None:
            check_tag_name(workspace, str(name))
        return []
    buf = io.StringIO()
    rt.dump(doc, buf)
    text = buf.getvalue()
    parse_params(
        load_yaml(text, path), path
    )  # raises ConfigError naming every bad key; the file is untouched
    if name is not None:
        check_tag_name(workspace, str(name))  # before any work: publish tags with it
    tmp = path.with_name(f".{path.name}.incomplete-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return changes
