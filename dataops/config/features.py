"""The `preprocess.features` entries: one model per feature kind, `Feature` their union on `kind`.

What each kind does with its data lives in `dataops.features`; these models only say what a
user may write.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from dataops.config.base import MAX_TENSOR_ELEMENTS, Name, StrictModel

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


class _FeatureModel(StrictModel):
    """A feature of `preprocess.features`; `dataops.features` gives each kind its behaviour."""

    # The fields every kind has, first in its schema and in the params it records. Each kind
    # narrows `kind` to its own Literal (the discriminator of `Feature`); a field keeps the place
    # its first declaration gives it, so the order stays kind, name, description, column.
    kind: str
    name: FeatureName
    description: str = _description()
    column: FeatureColumn = None

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
    dtype: Literal["float32", "int64"] = Field(
        "int64", description="Stored type of the values: `int64` or `float32`."
    )


MAX_IMAGE_SIDE = 8192
DEFAULT_MAX_PIXELS = 1 << 26  # 64 Mpx
MAX_MAX_PIXELS = 1 << 27  # below Pillow's own refusal (2 x Image.MAX_IMAGE_PIXELS)


class ImageFeature(_FeatureModel):
    """Encoded image bytes (PNG, JPEG, …) decoded exactly at their bit depth, converted as declared, optionally resized; stored as PNG or raw pixels, or a float tensor."""

    kind: Literal["image"]
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
