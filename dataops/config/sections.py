"""The other sections of `params.yaml`: `dataset` (name and card), `sample`, `preprocess` (the
split and the features), `serialize` and `validate`."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dataops.config.base import BatchRows, Name, OnError, Seed, StrictModel, check_ref_component
from dataops.config.features import Feature
from dataops.errors import clip


class DatasetParams(StrictModel):
    name: str = Field(
        "sample",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Dataset name (1-100 characters: letters, digits, `_`, `.`, `-`, starting with a letter or digit, and a valid git tag component); prefixes every shard file and the published git tags.",
    )
    on_error: OnError = Field(
        "fail",
        description="Bad input rows: `fail` stops naming the file and row; `skip` drops the row and counts it by reason.",
    )
    description: str = Field(
        "",
        max_length=10_000,
        description="Dataset card: what the dataset is (metadata.json, dataset_info.json, `dataops info`).",
    )
    homepage: str = Field(
        "", max_length=2_000, description="Dataset card: a URL where to read more."
    )
    citation: str = Field(
        "", max_length=10_000, description="Dataset card: how to cite it (e.g. BibTeX)."
    )
    license: str = Field(
        "",
        max_length=1_000,
        description="Dataset card: its license, an SPDX identifier (`CC-BY-4.0`) or a short text.",
    )

    @field_validator("name")
    @classmethod
    def _git_tag_component(cls, v: str) -> str:
        return check_ref_component(v)


class SampleParams(StrictModel):
    num_examples: int = Field(
        2000, ge=1, le=10_000_000, description="Rows in the generated sample source."
    )
    seed: Seed = Field(0, description="Seed of the generator; the same seed gives the same bytes.")
    image_size: int = Field(
        32, ge=4, le=512, description="Side of the generated square PNG images, in pixels."
    )
    num_classes: int = Field(
        4, ge=2, le=26, description="Number of image classes (one folder each)."
    )


_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,63}")


class SplitParams(StrictModel):
    seed: Seed = Field(0, description="Seed of the split hash.")
    ratios: dict[str, float] = Field(
        max_length=100,
        description="Split name → fraction; they sum to 1. A row's split depends only on its key, the seed and the order of the ratios (rows are placed on their cumulative sums), so the order is part of the dataset's fingerprint. Names: letters, digits and `_` (at most 64).",
    )

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one split is needed")
        for name, r in v.items():
            if not _SPLIT_NAME.fullmatch(name):
                raise ValueError(
                    f"split name {clip(repr(name))} must be 1-64 letters, digits or '_', starting with a letter or digit (it is part of every shard file name)"
                )
            if not (0 < r <= 1):
                raise ValueError(f"ratio of split {name!r} must be in (0, 1], got {r}")
        total = math.fsum(v.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"split ratios must sum to 1, they sum to {total:g}")
        return v


class PreprocessParams(StrictModel):
    split: SplitParams = Field(description="How rows are assigned to splits.")
    features: list[Feature] = Field(
        min_length=1,
        max_length=1000,
        description="The stored features, in order; each has a `kind` (tables below).",
    )
    batch_rows: BatchRows = Field(4096, description="Rows transformed per batch.")

    @model_validator(mode="after")
    def _unique(self) -> PreprocessParams:
        names = [n for f in self.features for n in f.output_names]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"feature names must be unique; repeated: {dup}")
        return self


class SerializeParams(StrictModel):
    target_shard_bytes: int = Field(
        128 << 20,
        ge=1 << 10,
        le=1 << 40,
        description="Shard count per split = ceil(split bytes / this), unless `num_shards` is set.",
    )
    num_shards: int | None = Field(
        None, ge=1, le=100_000, description="Fixed shard count per split."
    )
    compression: Literal["none", "gzip", "zlib"] = Field(
        "none",
        description="Shard compression, as `tf.data.TFRecordDataset(compression_type=...)` reads it; compressed shards have no shard index and no TFDS metadata.",
    )
    deflate: Literal["isal", "zlib"] = Field(
        "isal",
        description="Deflate implementation for gzip/zlib: `isal` (ISA-L, the `isal` wheel pinned in uv.lock; levels 0-3) or `zlib` (the system zlib behind Python's `zlib`; levels 0-9).",
    )
    compression_level: int | None = Field(
        None,
        description="Deflate level; null: 2 for isal, 6 for zlib. Lower is faster, higher is smaller.",
    )
    batch_rows: BatchRows = Field(8192, description="Rows encoded per batch.")

    @field_validator("compression_level")
    @classmethod
    def _level_in_range(cls, v: int | None, info: ValidationInfo) -> int | None:
        top = DEFLATE_MAX_LEVEL.get(info.data.get("deflate", "isal"), 9)
        if v is not None and not 0 <= v <= top:
            raise ValueError(f"deflate '{info.data.get('deflate')}' takes levels 0-{top}")
        return v

    @property
    def level(self) -> int:
        """The deflate level in effect."""
        if self.compression_level is not None:
            return self.compression_level
        return DEFAULT_DEFLATE_LEVEL[self.deflate]


DEFLATE_MAX_LEVEL = {"isal": 3, "zlib": 9}
DEFAULT_DEFLATE_LEVEL = {"isal": 2, "zlib": 6}


class ClassBalance(StrictModel):
    feature: Name = Field(description="Categorical feature whose class shares are checked.")
    min_fraction: float = Field(
        0.0, ge=0, le=1, description="Smallest share of any class, per split."
    )
    max_fraction: float = Field(
        1.0, ge=0, le=1, description="Largest share of any class, per split."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ClassBalance:
        if self.min_fraction > self.max_fraction:
            raise ValueError(
                f"min_fraction {self.min_fraction} is greater than max_fraction {self.max_fraction}"
            )
        return self


class LabelRange(StrictModel):
    feature: Name = Field(description="The int64 feature whose values are checked.")
    min: int = Field(description="Smallest allowed value.")
    max: int = Field(description="Largest allowed value.")

    @model_validator(mode="after")
    def _ordered(self) -> LabelRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ValidateParams(StrictModel):
    min_examples: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        max_length=100,
        description="Split → minimum number of examples; every key must be a split of `preprocess.split.ratios`.",
    )
    label_range: LabelRange | None = Field(
        None, description="Allowed inclusive range of an int64 label feature."
    )
    class_balance: ClassBalance | None = Field(
        None, description="Bounds on each class's share of a categorical feature, per split."
    )
    allow_nan: bool = Field(False, description="Allow NaN or Inf in float features.")
    batch_size: BatchRows = Field(1024, description="Records parsed per batch.")
