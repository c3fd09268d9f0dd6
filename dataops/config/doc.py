"""The `params.yaml` reference, generated from the pydantic models of `dataops.config`.

README.md holds its output between `<!-- params:begin -->` and `<!-- params:end -->`; a test
fails when they differ, so every key, default and description in the README is the code's.
`python -m dataops.config.doc` prints it.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dataops import config

BEGIN, END = "<!-- params:begin -->", "<!-- params:end -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        a = stack.pop()
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
        stack.extend(typing.get_args(a))
    return out


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str, skip: set[str]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in skip:
            continue
        path = f"{prefix}{key}"
        nested = [m for m in _models_in(field.annotation) if m is not model]
        if nested and not field.description and field.is_required() is False and not prefix:
            rows += _rows(nested[0], path + ".", skip=set())
            continue
        rows.append(f"| `{path}` | {_default(field)} | {_cell(field.description or '')} |")
        if len(nested) == 1 and key not in ("features",):
            rows += _rows(
                nested[0], path + "[]." if "list" in str(field.annotation) else path + ".", set()
            )
    return rows


def reference_markdown() -> str:
    """Every key of params.yaml (one table), then each feature kind's keys (one table each)."""
    lines = [BEGIN, "", "| key | default | meaning |", "|---|---|---|"]
    for name, field in config.Params.model_fields.items():
        key = field.alias or name
        model = _models_in(field.annotation)[0]
        lines += _rows(model, f"{key}.", set())
    lines += [
        "",
        "Each entry of `preprocess.features` has a `kind`; the keys of each kind:",
        "",
    ]
    kinds = typing.get_args(typing.get_args(config.Feature)[0])
    for model in kinds:
        kind = typing.get_args(model.model_fields["kind"].annotation)[0]
        doc = _cell((model.__doc__ or "").strip().split("\n\n")[0])
        lines += [f"**`kind: {kind}`** — {doc}", "", "| key | default | meaning |", "|---|---|---|"]
        lines += [r for r in _rows(model, "", {"kind"})]
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
