"""`params.yaml`: one pydantic model per stage, validated once at the edge.

The file is read with a bounded, strict YAML loader (`load_yaml`): at most `MAX_PARAMS_BYTES`,
duplicate keys refused (as DVC refuses them), aliases allowed only while the document they expand
to stays under `MAX_YAML_NODES` nodes (a "billion laughs" file is refused at once), YAML 1.2
booleans (`true`/`false` only; `yes`/`no`/`on`/`off` stay strings, as DVC reads them). The models
are strict (`"2"` is not an int, `"yes"` not a bool) and every string, size and shape is bounded;
checks across sections (referenced features and splits exist, min <= max) run at parse time.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from dataops.errors import ConfigError, clip, stating_input

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


class _Model(BaseModel):
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


class DatasetParams(_Model):
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


class SampleParams(_Model):
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


SourceFormat = Literal["csv", "parquet", "jsonl", "json", "npy", "npz", "hdf5", "image_folder"]
JsonType = Literal[
    "string",
    "int64",
    "float64",
    "bool",
    "list<string>",
    "list<int64>",
    "list<float64>",
    "list<bool>",
]
_TEXT_FORMATS = ("csv", "jsonl", "json")
_CSV_ONLY = ("delimiter", "quote_char", "header", "column_names", "null_values")


class SourceParams(_Model):
    name: str = Field(description="Name of the source, used in messages and the manifest.")
    format: SourceFormat = Field(
        description="File format of the source. `json` is one top-level array of objects."
    )
    path: str = Field(
        description="File or folder, relative to the project directory; it must resolve (symlinks followed) inside the project unless listed in `ingest.allow_outside`."
    )
    key: str | None = Field(
        None,
        description="Key column of this source (default: `ingest.key`). For `npy`/`npz`/`hdf5` without such an array, the row index is the key; for `image_folder`, the file name without extension.",
    )
    columns: list[str] | None = Field(
        None, description="Keep only these columns (the key is always kept)."
    )
    image_columns: list[str] = Field(
        default_factory=list,
        description="Columns holding image file paths relative to the source file; ingest replaces each path with the file's bytes.",
    )
    label_column: str = Field(
        "label",
        description="`image_folder` only: name of the column that receives the class folder name.",
    )
    image_column: str = Field(
        "image",
        description="`image_folder` only: name of the column that receives the encoded image bytes.",
    )
    encoding: str = Field(
        "utf-8",
        description="`csv`/`jsonl`/`json`: text encoding of the file (a UTF-8 byte-order mark is skipped). Any Python codec name, e.g. `latin-1`, `cp1252`.",
    )
    delimiter: str = Field(",", description="`csv` only: field delimiter, one character.")
    quote_char: str | None = Field(
        '"', description="`csv` only: quote character, one character; null: no quoting."
    )
    header: bool = Field(
        True,
        description="`csv` only: the first line holds the column names. With `false`, `column_names` is required.",
    )
    column_names: list[str] | None = Field(
        None, description="`csv` only, with `header: false`: the names of the columns, in order."
    )
    null_values: list[str] = Field(
        default_factory=lambda: [""],
        description='`csv` only: field texts read as missing (default only the empty field; e.g. ["", "NA"]).',
    )
    schema_: dict[str, JsonType] | None = Field(
        None,
        alias="schema",
        description="`jsonl`/`json` only: column -> type, instead of the type inferred from the whole file.",
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1 or v in "\r\n":
            raise ValueError(f"must be one character other than a newline, got {v!r}")
        return v

    @field_validator("quote_char")
    @classmethod
    def _quote(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v in "\r\n"):
            raise ValueError(f"must be one character other than a newline, or null, got {v!r}")
        return v

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @model_validator(mode="after")
    def _format_options(self) -> SourceParams:
        given = self.model_fields_set
        if self.format != "csv":
            wrong = [k for k in _CSV_ONLY if k in given]
            if wrong:
                raise ValueError(f"{wrong} apply to format csv only (this source is {self.format})")
        if self.format not in _TEXT_FORMATS and "encoding" in given:
            raise ValueError(
                f"'encoding' applies to csv/jsonl/json only (this source is {self.format})"
            )
        if self.format not in ("jsonl", "json") and self.schema_ is not None:
            raise ValueError(f"'schema' applies to jsonl/json only (this source is {self.format})")
        if self.header and self.column_names is not None:
            raise ValueError("'column_names' needs 'header: false' (the header names the columns)")
        if not self.header and not self.column_names:
            raise ValueError("'header: false' needs 'column_names'")
        if self.column_names is not None and len(set(self.column_names)) != len(self.column_names):
            raise ValueError(f"'column_names' repeats a name: {self.column_names}")
        if self.quote_char is not None and self.quote_char == self.delimiter:
            raise ValueError("'quote_char' and 'delimiter' must differ")
        return self


# Keys added after the first release: recorded in the manifest only when they differ from the
# default, so manifests (and the metadata.json built from them) of existing projects keep their bytes.
_NEW_SOURCE_KEYS = (
    "encoding",
    "delimiter",
    "quote_char",
    "header",
    "column_names",
    "null_values",
    "schema",
)
_NEW_INGEST_KEYS = ("allow_outside",)


class IngestParams(_Model):
    key: str | None = Field(
        "id",
        description="Column the sources are joined on. Every row must appear in every source. null: keyless, each row's key is `<first source name>:<record index>` (see README).",
    )
    sources: list[SourceParams] = Field(
        min_length=1, description="The sources; the first one sets the row order."
    )
    batch_rows: BatchRows = Field(4096, description="Rows read per batch (bounds memory).")
    partition_bytes: int = Field(
        256 << 20,
        ge=1 << 10,
        description="Join partition size: inputs larger than this are hash-partitioned on disk so memory stays bounded.",
    )
    allow_outside: list[str] = Field(
        default_factory=list,
        description="Paths outside the project (relative to it, or absolute) under which sources may lie.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> IngestParams:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique; repeated: {dup}")
        if self.key is None:
            for s in self.sources:
                if s.key is not None:
                    raise ValueError(
                        f"source '{s.name}' sets key '{s.key}' but ingest.key is null (keyless: rows are matched by position)"
                    )
                if s.format == "image_folder":
                    raise ValueError(
                        f"source '{s.name}': image_folder cannot be keyless (its key is the file name); set ingest.key"
                    )
        return self

    def recorded(self) -> dict[str, Any]:
        """These params as JSON for the manifest: keys added later appear only when set."""
        data = self.model_dump(mode="json", by_alias=True)
        for k in _NEW_INGEST_KEYS:
            if not data.get(k):
                data.pop(k, None)
        src_defaults = SourceParams.model_construct(name="", format="csv", path="").model_dump(
            mode="json", by_alias=True
        )
        for s in data["sources"]:
            for k in _NEW_SOURCE_KEYS:
                if s.get(k) == src_defaults.get(k):
                    s.pop(k, None)
        return data


# The fields every feature kind has, declared per kind (a field on the shared base would move
# to the front of each model's field order).
FeatureName = Annotated[
    Name,
    Field(
        description="Feature name: the key of the stored feature (and of its input column unless `column` is set)."
    ),
]
FeatureColumn = Annotated[
    Name | None, Field(description="Input column (default: the feature name).")
]


def _description() -> Any:
    return Field(
        "",
        max_length=1_000,
        description="Dataset card: what the feature means (metadata.json, features.json, `dataops info`).",
    )


class _FeatureModel(_Model):
    """A feature of `preprocess.features`; `dataops.features` gives each kind its behaviour."""

    if TYPE_CHECKING:
        name: str  # declared by each kind (a field declared here would reorder the fields)

    @property
    def output_names(self) -> list[str]:
        """Names of the stored features this feature writes."""
        return [self.name]

    @model_serializer(mode="wrap")
    def _omit_new_defaults(self, handler: Any) -> dict[str, Any]:
        # `description` (added after format 1) is written only when set, so the params
        # recorded by an existing config keep their bytes.
        data = handler(self)
        if data.get("description") == "":
            data.pop("description", None)
        return data

    @property
    def int64_scalar(self) -> bool | None:
        """Whether the feature named `name` is stored as one int64 per example (what
        `validate.label_range` and `class_balance` read); None when only the data can tell."""
        return False


class NumericFeature(_FeatureModel):
    """One number per row: float32 (imputed, optionally standardized with train statistics) or int64 (exact; a missing value is a bad row)."""

    kind: Literal["numeric"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None
    dtype: Literal["float32", "int64"] = Field(
        "float32", description="Stored type: `float32` or `int64`."
    )
    impute: Literal["none", "mean", "zero"] = Field(
        "mean",
        description="Missing values: `mean` of train, `zero`, or `none` (a missing value is a bad row).",
    )
    standardize: bool = Field(
        False,
        description="Subtract the train mean and divide by the train standard deviation (population, ddof=0; 1 when it is 0). float32 only.",
    )

    @property
    def int64_scalar(self) -> bool | None:
        return self.dtype == "int64"


class TensorFeature(_FeatureModel):
    """A fixed-shape array per row (a list column, or an array of NumPy/HDF5), stored flat with its shape."""

    kind: Literal["tensor"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None
    dtype: Literal["float32", "int64"] = Field(
        "float32", description="Stored type: `float32` or `int64`."
    )
    shape: list[int] = Field(
        max_length=8,
        description=f"Fixed shape of every value, e.g. [8] or [4, 4]; positive sides, at most {MAX_TENSOR_ELEMENTS} elements.",
    )

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: list[int]) -> list[int]:
        if any(d < 1 for d in v):
            raise ValueError(f"every side must be at least 1, got {v}")
        if math.prod(v) > MAX_TENSOR_ELEMENTS:
            raise ValueError(
                f"{math.prod(v)} elements per value; at most {MAX_TENSOR_ELEMENTS} are allowed"
            )
        return v

    @property
    def int64_scalar(self) -> bool | None:
        return self.dtype == "int64" and not self.shape


class CategoricalFeature(_FeatureModel):
    """A string (or integer) label mapped to an id in the sorted train vocabulary; stored as int64 with the vocabulary and class names."""

    kind: Literal["categorical"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None
    unknown: Literal["error", "oov"] = Field(
        "oov",
        description="A value not seen in train: `oov` maps it to id = vocabulary size; `error` makes the row bad (counted as `unknown_category`).",
    )
    missing: Literal["error", "oov"] | None = Field(
        None,
        description="A missing value (null; an empty CSV cell): `oov` maps it to id = vocabulary size; `error` makes the row bad (counted as `missing_value`); null follows `unknown`.",
    )

    @property
    def missing_policy(self) -> Literal["error", "oov"]:
        """What a missing value does: `missing`, or `unknown` when it is not set."""
        return self.missing or self.unknown

    @property
    def int64_scalar(self) -> bool | None:
        return True


class TextFeature(_FeatureModel):
    """UTF-8 text, normalized; with `tokenize`, also `<name>_ids` (token ids of the train vocabulary)."""

    kind: Literal["text"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None
    lowercase: bool = Field(True, description="Lower-case the text (Unicode-aware).")
    normalize: Literal["NFC", "NFKC", "none"] = Field(
        "NFKC",
        description="Unicode normalization applied first; whitespace runs always become one space.",
    )
    tokenize: bool = Field(
        False,
        description="Also emit `<name>_ids`, a variable-length int64 list of token ids (0 pad, 1 out-of-vocabulary).",
    )
    max_vocab: int = Field(
        10000, ge=1, le=10_000_000, description="Most frequent train tokens kept in the vocabulary."
    )
    empty: Literal["keep", "error"] = Field(
        "keep",
        description="A missing text (null; an empty CSV cell) or one empty after normalization: `keep` stores the empty string (and no token ids); `error` makes the row bad, counted as `missing_value` (null) or `empty_text`.",
    )

    @property
    def ids_name(self) -> str:
        """Name of the token-id feature emitted when `tokenize` is on."""
        return f"{self.name}_ids"

    @property
    def output_names(self) -> list[str]:
        return [self.name, self.ids_name] if self.tokenize else [self.name]


class SequenceFeature(_FeatureModel):
    """A variable-length list of numbers per row, read back as a `tf.RaggedTensor`."""

    kind: Literal["sequence"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None
    dtype: Literal["float32", "int64"] = Field(
        "int64", description="Stored type of the values: `int64` or `float32`."
    )


MAX_IMAGE_SIDE = 8192
DEFAULT_MAX_PIXELS = 1 << 26  # 64 Mpx
MAX_MAX_PIXELS = 1 << 27  # below Pillow's own refusal (2 x Image.MAX_IMAGE_PIXELS)


class ImageFeature(_FeatureModel):
    """Encoded image bytes (PNG, JPEG, …) decoded exactly at their bit depth, converted as declared, optionally resized; stored as PNG or raw pixels, or a float tensor."""

    kind: Literal["image"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None
    size: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description=f"Resize to [height, width], each side 1..{MAX_IMAGE_SIDE} (triangle filter, antialiased, exact integer arithmetic: see `dataops.imaging`); null keeps the size, which must then be the same for all images.",
    )
    channels: Literal[1, 3, 4] = Field(
        3,
        description="1: gray (colour sources converted by ITU-R 601-2 luma); 3: RGB; 4: RGBA (needs `alpha: keep`).",
    )
    encoding: Literal["png", "raw"] = Field(
        "png",
        description="`png` stores re-encoded PNG bytes (16-bit PNG for uint16); `raw` stores the pixels row-major (uint16: 2 bytes little-endian).",
    )
    dtype: Literal["uint8", "uint16", "float32"] = Field(
        "uint8",
        description="`uint8` (16-bit sources scaled exactly: round(v/257)); `uint16` (8-bit sources scaled by 257); `float32` stores pixels as a float tensor, divided by 255 (65535 for 16-bit sources) when `scale`.",
    )
    scale: bool = Field(
        True,
        description="`dtype: float32` only: divide by 255 (65535 for 16-bit sources) so pixels are in [0, 1].",
    )
    alpha: Literal["error", "drop", "composite", "keep"] = Field(
        "error",
        description="Images with transparent or translucent pixels: `error` makes the row bad; `drop` ignores the alpha channel (stores the hidden colours); `composite` blends onto `background`; `keep` stores it as a 4th channel (`channels: 4`). Fully opaque alpha is removed under every policy but `keep`. Default `keep` when `channels: 4`, else `error`.",
    )
    background: list[int] = Field(
        default_factory=lambda: [0, 0, 0],
        min_length=3,
        max_length=3,
        description="`alpha: composite` only: [r, g, b] in 0..255 (scaled by 257 for 16-bit sources; its luma for `channels: 1`).",
    )
    convert_gray: bool = Field(
        False,
        description="Replicate a grayscale source into 3 (or 4) channels; without it such an image is a bad row (`wrong_channels`).",
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        le=MAX_MAX_PIXELS,
        description="Largest source image, in pixels (width x height), checked before decoding; larger ones are bad rows (`image_too_large`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _alpha_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("channels") == 4 and "alpha" not in data:
            return {**data, "alpha": "keep"}
        return data

    @field_validator("size")
    @classmethod
    def _side_bounds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and not all(1 <= side <= MAX_IMAGE_SIDE for side in v):
            raise ValueError(f"each side of `size` must be 1..{MAX_IMAGE_SIDE} pixels, got {v}")
        return v

    @field_validator("background")
    @classmethod
    def _background_bounds(cls, v: list[int]) -> list[int]:
        if not all(0 <= c <= 255 for c in v):
            raise ValueError(f"`background` is [r, g, b] with each value 0..255, got {v}")
        return v

    @model_validator(mode="after")
    def _alpha_channels(self) -> ImageFeature:
        if self.channels == 4 and self.alpha != "keep":
            raise ValueError(
                f"channels: 4 stores the alpha channel, but alpha is '{self.alpha}'; set alpha: keep (or channels: 3)"
            )
        if self.alpha == "keep" and self.channels != 4:
            raise ValueError(
                f"alpha: keep stores a 4th channel; set channels: 4 (channels is {self.channels})"
            )
        if "background" in self.model_fields_set and self.alpha != "composite":
            raise ValueError(
                f"background is used only with alpha: composite (alpha is '{self.alpha}')"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_new_defaults(self, handler: Any) -> dict[str, Any]:
        # Keys added after format 1 are written only when they differ from their default, so
        # the params recorded in metadata.json (and the fingerprint) of an existing config
        # keep their bytes. Reading them back fills the same defaults in.
        data = handler(self)
        for key, default in _IMAGE_DEFAULTS.items():
            if data.get(key) == default:
                data.pop(key, None)
        return data


_IMAGE_DEFAULTS: dict[str, Any] = {
    "description": "",
    "alpha": "error",
    "background": [0, 0, 0],
    "convert_gray": False,
    "max_pixels": DEFAULT_MAX_PIXELS,
}


class PassthroughFeature(_FeatureModel):
    """The key (or any string column) stored as UTF-8 text, unchanged; a missing value is a bad row."""

    kind: Literal["key"]
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None

    @property
    def int64_scalar(self) -> bool | None:
        return False  # the key is always stored as UTF-8 text (`features/key.py`)


Feature = Annotated[
    NumericFeature
    | TensorFeature
    | CategoricalFeature
    | TextFeature
    | SequenceFeature
    | ImageFeature
    | PassthroughFeature,
    Field(discriminator="kind"),
]


_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,63}")


class SplitParams(_Model):
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


class PreprocessParams(_Model):
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


class SerializeParams(_Model):
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


class ClassBalance(_Model):
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


class LabelRange(_Model):
    feature: Name = Field(description="The int64 feature whose values are checked.")
    min: int = Field(description="Smallest allowed value.")
    max: int = Field(description="Largest allowed value.")

    @model_validator(mode="after")
    def _ordered(self) -> LabelRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ValidateParams(_Model):
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


def _feature_kinds(p: PreprocessParams) -> dict[str, bool | None]:
    """Stored feature name → True if an int64 scalar, False if surely not, None if the data tells."""
    return {
        n: (f.int64_scalar if n == f.name else False) for f in p.features for n in f.output_names
    }


class Params(_Model):
    dataset: DatasetParams = DatasetParams()
    sample: SampleParams = SampleParams()
    ingest: IngestParams
    preprocess: PreprocessParams
    serialize: SerializeParams = SerializeParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _across_sections(self) -> Params:
        kinds = _feature_kinds(self.preprocess)
        v = self.validate_
        for key, ref in (("label_range", v.label_range), ("class_balance", v.class_balance)):
            if ref is None:
                continue
            if ref.feature not in kinds:
                raise ValueError(
                    f"validate.{key}.feature: no feature {clip(repr(ref.feature))} in preprocess.features (features: {sorted(kinds)})"
                )
            if kinds[ref.feature] is False:
                raise ValueError(
                    f"validate.{key}.feature: feature {ref.feature!r} is not an int64 scalar (a categorical, an int64 numeric or an int64 tensor of shape [])"
                )
        splits = set(self.preprocess.split.ratios)
        unknown = sorted(set(v.min_examples) - splits)
        if unknown:
            raise ValueError(
                f"validate.min_examples: {clip(repr(unknown))} are not splits of preprocess.split.ratios (splits: {sorted(splits)})"
            )
        return self

    def section(self, name: str) -> dict[str, Any]:
        """The section `name` as plain JSON data (what the stage records in its outputs)."""
        value = getattr(self, "validate_" if name == "validate" else name)
        return value.model_dump(mode="json")


_HINTS = {
    "bool_type": "; write true or false, without quotes",
    "int_type": "; write a whole number without quotes",
    "float_type": "; write a number without quotes",
}


def _format_error(err: ValidationError, path: Path) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(
            str(p) for p in e["loc"] if not str(p).startswith(("function-after", "tagged-union"))
        )
        loc = loc.replace("validate_", "validate")
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key {clip(repr(loc))}")
        elif e["type"] == "missing":
            lines.append(f"{path}: missing key '{loc}'")
        elif not loc:  # a check across sections: the message names its keys
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg}")
        else:
            value = e.get("input")
            hint = _HINTS.get(e["type"], "") if isinstance(value, str) else ""
            msg = e["msg"].removeprefix("Value error, ")
            if not isinstance(value, dict):
                msg = stating_input(msg, value)
            lines.append(f"{path}: key '{loc}': {msg}{hint}")
    return "\n".join(lines)


def parse_params(data: Any, path: str | Path = "params.yaml") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key.

    Missing sections take their documented defaults (`dataset`, `sample`, `serialize`,
    `validate`); `ingest` and `preprocess` have none and are required.
    """
    path = Path(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least 'ingest' and 'preprocess'")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, path)) from None


# ---- the YAML loader -----------------------------------------------------------------------


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


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate `params.yaml` (at most `MAX_PARAMS_BYTES`)."""
    path = Path(path)
    return parse_params(load_params_data(path), path)


def load_params_data(path: str | Path = "params.yaml") -> Any:
    """The YAML data of a params file, read with the bounds of `load_yaml`, not yet validated."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; make the file readable") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_PARAMS_BYTES} bytes; a params file is a few KB — is this the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    return load_yaml(text, path)
