"""`metadata.json`: the description of a serialized dataset, as a pydantic model.

Its JSON Schema (`dataops/schemas/metadata.schema.json`) is generated from this model and
committed, like those of the other files between stages (`dataops.artifacts`, which lists them
all); `dataops schema --check` and `tests/test_artifacts.py` fail when they drift. Regenerate
them with `dataops schema --write`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)

from dataops.errors import DatasetError
from dataops.fingerprint import files_digest
from dataops.fsutil import read_json_file, write_json
from dataops.naming import METADATA_FILE

FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "metadata.schema.json"

FeatureKind = Literal["tensor", "sequence", "text", "bytes", "image"]
DType = Literal["float32", "int64", "uint8", "uint16", "string"]
Compression = Literal["none", "gzip", "zlib"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageDecode(_Model):
    """How an image feature's stored pixels were derived from its source images."""

    conversions: list[str] = Field(
        description="Conversions applied to at least one stored image, sorted (formulas in `dataops.imaging.CONVERSIONS`): `16bit_to_8bit` round(v/257), `8bit_to_16bit` v*257, `alpha_added`, `alpha_composited`, `alpha_dropped`, `cmyk_to_rgb`, `gray_to_rgb`, `opaque_alpha_removed`, `palette_to_rgb`, `resized`, `rgb_to_gray` (ITU-R 601-2 luma), `transparency_key_to_alpha`."
    )
    background: list[int] | None = Field(
        None, description="With `alpha_composited`: the [r, g, b] background (0..255)."
    )


class FeatureInfo(_Model):
    """One feature of every example."""

    name: str = Field(description="Key of the feature in each `tf.train.Example`.")
    kind: FeatureKind = Field(
        description="`tensor`: fixed shape; `sequence`: variable-length 1-D list; `text`: UTF-8 string; `bytes`: raw bytes; `image`: an image of fixed shape."
    )
    dtype: DType = Field(description="Element type after decoding.")
    shape: list[int | None] = Field(
        description="Shape of one example's value after decoding; `null` marks the variable dimension of a sequence. `[]` is a scalar."
    )
    encoding: Literal["none", "utf-8", "png", "raw"] = Field(
        description="How the value is stored: `none` (int64_list/float_list), `utf-8` (bytes_list of text), `png` (encoded PNG), `raw` (pixels row-major in one bytes value; uint16 little-endian)."
    )
    num_classes: int | None = Field(
        None,
        description="For categorical features: the vocabulary size (ids 0..num_classes-1; num_classes itself is the out-of-vocabulary id when allowed).",
    )
    vocabulary: list[str] | None = Field(None, description="For categorical features: id → value.")
    description: str = Field(
        "", description="What the feature means (from `preprocess.features[].description`)."
    )
    decode: ImageDecode | None = Field(
        None,
        description="Images only, present when some source image was converted: which conversions. Absent otherwise.",
    )

    def class_name(self, class_id: int) -> str:
        """The name of a categorical id: its vocabulary entry, `[OOV]` for the out-of-vocabulary
        id (= vocabulary size), or the id itself for a feature without a vocabulary."""
        if self.vocabulary is None:
            return str(class_id)
        if 0 <= class_id < len(self.vocabulary):
            return self.vocabulary[class_id]
        return "[OOV]" if class_id == len(self.vocabulary) else f"<invalid id {class_id}>"

    @model_serializer(mode="wrap")
    def _omit_absent_decode(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("decode") is None:
            data.pop("decode", None)
        return data

    @property
    def wire(self) -> Literal["float", "int64", "bytes"]:
        """The `tf.train.Feature` list that holds the value."""
        if self.encoding in ("utf-8", "png", "raw") or self.kind in ("text", "bytes"):
            return "bytes"
        return "float" if self.dtype == "float32" else "int64"

    @property
    def num_elements(self) -> int | None:
        """Values per example for fixed shapes; None for sequences and byte strings."""
        if self.kind != "tensor":
            return None
        n = 1
        for d in self.shape:
            n *= int(d or 0)
        return n


class IndexInfo(_Model):
    file: str = Field(
        description="The shard's index (record offsets in CRC-checked blocks; see README), relative to the dataset directory: `index/<name>-<split>.tfindex-00000-of-00004`."
    )
    num_bytes: int
    sha256: str


class ShardInfo(_Model):
    file: str = Field(description="File name, relative to the dataset directory.")
    num_examples: int
    num_bytes: int = Field(description="Size of the file on disk.")
    sha256: str
    index: IndexInfo | None = Field(
        None, description="The shard's index; uncompressed shards have one, compressed ones none."
    )
    edges_crc32c: int | None = Field(
        None,
        description="CRC-32C of the file's first and last 64 KiB (of the whole file when it is under 128 KiB): the quick content check the loader makes by default. Absent in datasets written before it existed (the check is then skipped).",
    )


class SplitInfo(_Model):
    name: str
    num_examples: int
    num_bytes: int
    shards: list[ShardInfo]


class InputInfo(_Model):
    """One source's files, summed up in one digest (the per-file list is in the ingest manifest)."""

    format: str = Field(description="Format of the source (`ingest.sources[].format`).")
    path: str = Field(description="File or folder of the source, relative to the project.")
    num_files: int = Field(description="Files read from the source.")
    num_bytes: int = Field(description="Their total size.")
    sha256: str = Field(
        description="`dataops.fingerprint.files_digest` of its files: the sha256 of the `sha256sum` listing of every file (`<sha256>  <path>` lines sorted by path)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_file_list(cls, data: Any) -> Any:
        """Metadata written before this model listed every file's sha256 (`files`): read it as
        its digest, so older published versions still load."""
        if isinstance(data, dict) and "files" in data and "sha256" not in data:
            files = data["files"]
            data = {k: v for k, v in data.items() if k != "files"}
            data["sha256"] = files_digest(files)
        return data


class DatasetMetadata(_Model):
    """The whole `metadata.json`."""

    format_version: Literal[1] = Field(1, description="Version of this format.")
    name: str = Field(description="Dataset name.")
    description: str = Field("", description="What the dataset is (`dataset.description`).")
    homepage: str = Field("", description="Where to read more (`dataset.homepage`).")
    citation: str = Field("", description="How to cite it, e.g. BibTeX (`dataset.citation`).")
    license: str = Field(
        "", description="Its license, an SPDX identifier or a short text (`dataset.license`)."
    )
    fingerprint: str = Field(
        description="The dataset's content identity (`dataops.fingerprint.dataset_fingerprint`): sha256 of the inputs' digests, the dataset name and every ingest/preprocess/serialize param that changes a byte of the output (split ratios in their order); batch sizes and the dataset card are left out."
    )
    compression: Compression = "none"
    features: list[FeatureInfo]
    splits: list[SplitInfo]
    preprocessing: dict[str, Any] = Field(
        description="`params` (the ingest/preprocess/serialize sections used, as the fingerprint sees them: without batch sizes or feature descriptions, split ratios as an ordered list of `{name, ratio}`) and `state` (fitted statistics and vocabularies)."
    )
    inputs: dict[str, InputInfo] = Field(
        description="Per source: format, path, number and size of its files, and one digest of them all."
    )
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Rows dropped under `on_error: skip`, by reason. Empty when nothing was dropped.",
    )

    def split(self, name: str) -> SplitInfo:
        for s in self.splits:
            if s.name == name:
                return s
        raise DatasetError(
            f"dataset {self.name!r} has no split {name!r}; it has {[s.name for s in self.splits]}"
        )

    def feature(self, name: str) -> FeatureInfo:
        for f in self.features:
            if f.name == name:
                return f
        raise DatasetError(f"dataset {self.name!r} has no feature {name!r}")

    @property
    def num_examples(self) -> dict[str, int]:
        return {s.name: s.num_examples for s in self.splits}


def write_metadata(directory: str | Path, meta: DatasetMetadata) -> Path:
    path = Path(directory) / METADATA_FILE
    write_json(path, meta.model_dump(mode="json"))
    return path


def read_metadata(directory: str | Path) -> DatasetMetadata:
    """Read and validate `<directory>/metadata.json`."""
    path = Path(directory) / METADATA_FILE
    data = read_json_file(path, "is this a dataset directory (did you run `dvc pull`)?")
    return parse_metadata(data, str(path))


def parse_metadata(data: Any, where: str = METADATA_FILE) -> DatasetMetadata:
    try:
        return DatasetMetadata.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) if str(p).isprintable() else repr(str(p))[1:-1] for p in first["loc"])
        raise DatasetError(f"{where}: invalid metadata at '{loc}': {first['msg']}") from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `metadata.json`, generated from the model."""
    schema = DatasetMetadata.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/dataops/dataops/metadata.schema.json"
    return schema
