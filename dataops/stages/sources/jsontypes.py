"""The type of a JSON value position (column, list item, struct field), widened over a whole
source: what the JSON readers infer in pass 1 and convert to in pass 2."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from dataops.errors import DatasetError
from dataops.stages.sources.base import Source


class BadNumber(str):
    """A JSON number float64 cannot hold (it would become inf)."""


def parse_float(text: str) -> float | BadNumber:
    v = float(text)
    return BadNumber(text) if math.isinf(v) else v


_EXACT_MAX = 1 << 63
_SAFE_INT = 1 << 53  # every integer up to this is a float64 exactly


class JsonType:
    """The type of one value position (a column, a list's items, a struct field), widened over
    the whole source: null → any; int → float64 when a float appears (only if every integer
    seen is exactly a float64); nothing else. `declared` types never widen."""

    __slots__ = ("kind", "declared", "item", "fields", "float_at", "inexact_int")

    def __init__(self, kind: str | None = None, declared: bool = False) -> None:
        self.kind = kind
        self.declared = declared
        self.item: JsonType | None = None
        self.fields: dict[str, JsonType] = {}
        self.float_at: str | None = None
        self.inexact_int: tuple[int, str] | None = None

    @staticmethod
    def of_declared(name: str) -> JsonType:
        kinds = {"string": "str", "int64": "int", "float64": "float", "bool": "bool"}
        if name.startswith("list<"):
            t = JsonType("list", True)
            t.item = JsonType.of_declared(name[5:-1])
            return t
        return JsonType(kinds[name], True)

    def arrow(self) -> pa.DataType:
        if self.kind is None:
            return pa.null()
        if self.kind == "list":
            return pa.list_(self.item.arrow() if self.item else pa.null())
        if self.kind == "struct":
            return pa.struct([(k, t.arrow()) for k, t in self.fields.items()])
        return {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}[
            self.kind
        ]

    def describe(self) -> str:
        if self.kind is None:
            return "null"
        if self.kind == "list":
            return f"list<{self.item.describe() if self.item else 'null'}>"
        return {"bool": "bool", "int": "int64", "float": "float64", "str": "string"}.get(
            self.kind, self.kind
        )

    def observe(self, v: Any, where: str) -> str | None:
        """Widen to hold `v`; return why it cannot be held (the row is then bad)."""
        tv = type(v)  # fast paths: a scalar of the column's own kind
        if tv is str:
            if self.kind == "str":
                return None
        elif tv is float:
            if self.kind == "float":
                if self.float_at is None:
                    self.float_at = where
                return None
        elif tv is int:
            if self.kind == "int" and -_SAFE_INT <= v <= _SAFE_INT:
                return None
        elif v is None:
            return None
        if isinstance(v, BadNumber):
            return f"number {v} is out of float64 range"
        kind = kind_of(v)
        if self.kind is None and not self.declared:
            self.kind = kind
        if kind == "int" and self.kind in ("int", "float"):
            if self.kind == "int" and not -_EXACT_MAX <= v < _EXACT_MAX:
                return f"integer {v} is out of int64 range"
            if self.inexact_int is None and float(v) != v:
                self.inexact_int = (v, where)
            if self.kind == "float" and float(v) != v:
                return f"integer {v} cannot be stored exactly as float64"
            return None
        if kind == "float" and self.kind == "int" and not self.declared:
            self.kind = "float"  # an integer float64 cannot hold exactly is an error at the end
            self.float_at = where
            return None
        if kind != self.kind:
            return f"{_show(v)} is {kind_name(kind)}, the column is {self.describe()}"
        if kind == "float" and self.float_at is None:
            self.float_at = where
        if kind == "list":
            if self.item is None:
                self.item = JsonType()
            for x in v:
                why = self.item.observe(x, where)
                if why:
                    return f"item: {why}"
        elif kind == "struct":
            for k, x in v.items():
                t = self.fields.get(k)
                if t is None:
                    if self.declared:
                        continue
                    t = self.fields[k] = JsonType()
                why = t.observe(x, where)
                if why:
                    return f"field {k!r}: {why}"
        return None

    def convert(self, v: Any) -> Any:
        """`v` as this type's Python value; raise ValueError naming why it does not fit."""
        tv = type(v)
        if (
            (tv is str and self.kind == "str")
            or (tv is float and self.kind == "float")
            or v is None
        ):
            return v
        if isinstance(v, BadNumber):
            raise ValueError(f"number {v} is out of float64 range")
        kind = kind_of(v)
        if kind == self.kind:
            if kind == "int" and not -_EXACT_MAX <= v < _EXACT_MAX:
                raise ValueError(f"integer {v} is out of int64 range")
            if kind == "list":
                item = self.item or JsonType()
                return [item.convert(x) for x in v]
            if kind == "struct":
                return {k: t.convert(v.get(k)) for k, t in self.fields.items()}
            return v
        if kind == "int" and self.kind == "float":
            f = float(v)
            if f != v:
                raise ValueError(f"integer {v} cannot be stored exactly as float64")
            return f
        raise ValueError(f"{_show(v)} is {kind_name(kind)}, the column is {self.describe()}")


def kind_of(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "struct"


def kind_name(kind: str) -> str:
    return {
        "bool": "a bool",
        "int": "an integer",
        "float": "a float",
        "str": "a string",
        "list": "a list",
        "struct": "an object",
    }[kind]


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def check_exact(t: JsonType, src: Source, column: str) -> None:
    if t.kind == "float" and not t.declared and t.inexact_int is not None:
        v, at = t.inexact_int
        raise DatasetError(
            f"{src.label}: column '{column}' mixes floats (first at {t.float_at}) with integers "
            f"float64 cannot hold exactly ({v} at {at}); declare its type in {src.option('schema')}"
        )
    if t.item is not None:
        check_exact(t.item, src, column)
    for k, f in t.fields.items():
        check_exact(f, src, f"{column}.{k}")
