"""What every section of `params.yaml` shares: the strict model base, the bounds, the common field
types, and the git tag component check."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from dataops.errors import clip

OnError = Literal["fail", "skip"]

#: Largest params file read (bytes).
MAX_PARAMS_BYTES = 1 << 20
#: Most nodes the YAML document may hold once every alias is expanded.
MAX_YAML_NODES = 100_000
#: Most elements of one tensor feature value.
MAX_TENSOR_ELEMENTS = 1 << 20
#: Upper bound of every batch size (rows).
MAX_BATCH_ROWS = 1 << 20
MAX_NAME = 200
MAX_SEED = 2**53 - 1  # JavaScript-safe: the Airflow form edits it as a number

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
BatchRows = Annotated[int, Field(ge=1, le=MAX_BATCH_ROWS)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def check_ref_component(name: str) -> str:
    """`name` as one component of a git ref (`git check-ref-format` rules); ValueError otherwise."""
    bad = re.search(r"[\x00-\x20\x7f~^:?*\[\\/]", name)
    if bad:
        raise ValueError(
            f"{clip(repr(name))} cannot name a git tag: {bad.group()!r} is not allowed"
        )
    for rule, broken in (
        ("cannot start with '.'", name.startswith(".")),
        ("cannot contain '..'", ".." in name),
        ("cannot contain '@{'", "@{" in name),
        ("cannot end with '.'", name.endswith(".")),
        ("cannot end with '.lock'", name.endswith(".lock")),
        ("cannot be '@'", name == "@"),
    ):
        if broken:
            raise ValueError(f"{clip(repr(name))} cannot name a git tag: a tag {rule}")
    return name
