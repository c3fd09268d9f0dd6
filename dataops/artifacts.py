"""The JSON files one stage writes and another reads, as pydantic models.

| file                           | model              | written by       | read by                                   |
|--------------------------------|--------------------|------------------|-------------------------------------------|
| `data/snapshot/manifest.json`  | `Manifest`         | ingest           | preprocess (and its Beam driver)          |
| `data/preprocessed/state.json` | `PreprocessState`  | preprocess       | serialize (and its Beam driver)           |
| `data/tfrecords/metadata.json` | `DatasetMetadata`  | serialize        | validate, verify, the loader, publish...  |
| `reports/validation.json`      | `ValidationReport` | validate         | publish, `dataops info`                   |
| `<export>/export.json`         | `ExportInfo`       | `dataops export` | the loader                                |

`DatasetMetadata` lives in `dataops.metadata` (it is the dataset's public description, read by
every consumer); the models of the other files live here, and `ARTIFACTS` lists all five. Each
model reads and writes its file (`read(path)`, `write(path)`) through
`dataops.fsutil.write_json`, so the bytes are the canonical JSON of the model (the same bytes
as the dicts written before these models); unknown keys are refused (these are our own files:
an unknown key means another dataops version or a hand edit), types are strict, and a missing,
corrupt or invalid file is one `DatasetError` line naming the file and the field.

A validation report committed at a published version's tag is history, possibly hand-made or
hostile: publish and the Datasets page salvage it through `PublishedReport` rather than
refuse it.

The JSON Schema of each (`dataops/schemas/<name>.schema.json`) is generated from its model and
committed: `dataops schema --check` (and `tests/test_artifacts.py`) fails when they drift,
`dataops schema --write` regenerates them. `reports/metrics.json` has no model: no dataops code
reads it (it is DVC's view, flat numbers written by `dataops.stages.validate.metrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from dataops.errors import DatasetError, clip
from dataops.fsutil import dumps_json, loads_json, read_json_file, write_json
from dataops.metadata import DatasetMetadata, FeatureInfo

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_ID = "https://github.com/dataops/dataops/{name}.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def error_location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location for a one-line message: each part clipped, control characters
    (a key holding a newline) escaped, `(top level)` when empty."""
    parts = []
    for p in loc:
        text = str(p)
        if not text.isprintable():
            text = repr(text)[1:-1]
        parts.append(clip(text, 60))
    return ".".join(parts) or "(top level)"


class _Part(BaseModel):
    """A part of an artifact: frozen; unknown keys refused; strict types (`"yes"` is no bool,
    `"5"` no int)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Artifact(_Part):
    """A JSON file one stage writes and another reads."""

    TITLE: ClassVar[str] = "artifact"
    """What the file is, in messages (`invalid ingest manifest at 'counts'`)."""
    WRITER: ClassVar[str] = ""
    """What writes it: the hint of every error (`run the ingest stage first`)."""

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """Read and validate the file at `path` (strict JSON: `dataops.fsutil.loads_json`)."""
        return cls.parse(read_json_file(path, f"run {cls.WRITER} first"), str(path))

    @classmethod
    def loads(cls, raw: str | bytes, where: str) -> Self:
        """Validate the file's bytes (read elsewhere, e.g. from an object store)."""
        return cls.parse(loads_json(raw, where), where)

    @classmethod
    def parse(cls, data: Any, where: str) -> Self:
        """Validate already-decoded JSON (`where` names its file in the error)."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = error_location(first["loc"])
            more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
            raise DatasetError(
                f"{where}: invalid {cls.TITLE} at '{loc}': {first['msg']}{more} — run {cls.WRITER} again"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to the file. Python mode: every field is a JSON type already,
        and a NaN in free-form data (a fitted state) stays a NaN that `dumps_json` refuses,
        where pydantic's JSON mode would write `null` silently."""
        return self.model_dump(mode="python")

    def write(self, path: str | Path) -> Path:
        """Write the file atomically as canonical JSON (`dataops.fsutil.write_json`)."""
        path = Path(path)
        try:
            write_json(path, self.to_json())
        except ValueError as err:  # NaN or Inf in free-form data: JSON has no such number
            raise DatasetError(f"{path}: cannot write the {self.TITLE}: {err}") from None
        return path


# --- data/snapshot/manifest.json ---------------------------------------------------------------


class IgnoredFiles(_Part):
    count: int = Field(description="Files in the folder that are not read.")
    first: list[str] = Field(description="The first five of them, relative to the folder.")


class SourceFiles(_Part):
    """One source's input files, each with its content hash."""

    format: str = Field(description="Format of the source (`ingest.sources[].format`).")
    path: str = Field(description="File or folder of the source, relative to the project.")
    num_files: int = Field(description="Files read from the source.")
    num_bytes: int = Field(description="Their total size.")
    files: dict[str, str] = Field(
        description="Project-relative path (posix) → sha256 of every file read."
    )
    ignored_files: IgnoredFiles | None = Field(
        None,
        description="Image folders only: files the folder holds but does not read (another suffix, or outside any class folder). Absent for other formats.",
    )

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("ignored_files") is None:
            data.pop("ignored_files", None)
        return data


class SourceCounts(_Part):
    rows_read: int = Field(description="Rows read from the source.")
    rows_joined: int = Field(description="Rows joined into examples.")
    rows_skipped: dict[str, int] = Field(description="Rows skipped, by reason (sorted).")


class ExampleCounts(_Part):
    read: int = Field(description="Candidate examples (keys) read: written + skipped.")
    written: int = Field(description="Examples written to the snapshot.")
    skipped: dict[str, int] = Field(description="Examples skipped, by reason (sorted).")


class IngestCounts(_Part):
    examples: ExampleCounts
    sources: dict[str, SourceCounts] = Field(description="Per source, by name.")


class Manifest(Artifact):
    """`data/snapshot/manifest.json`: what ingest read and how the snapshot was joined."""

    TITLE: ClassVar[str] = "ingest manifest"
    WRITER: ClassVar[str] = "the ingest stage"

    params: dict[str, Any] = Field(
        description="The `ingest` params used (`IngestParams.recorded()`: keys added after the first release only when set)."
    )
    key: str = Field(description="The key column of the snapshot (`__row` when keyless).")
    num_rows: int = Field(description="Rows of the snapshot (all its parts).")
    columns: dict[str, str] = Field(description="Snapshot column → the source it came from.")
    shapes: dict[str, list[int]] = Field(
        description="Fixed shapes of array columns (HDF5/NumPy sources), by column."
    )
    skipped: dict[str, int] = Field(
        description="Examples skipped under `on_error: skip`, by reason (= `counts.examples.skipped`)."
    )
    counts: IngestCounts = Field(
        description="Row accounting: per source, rows read = joined + skipped; examples read = written + skipped."
    )
    sources: dict[str, SourceFiles] = Field(description="Every input file, per source.")
    fingerprint: str = Field(
        description="`dataops.fsutil.fingerprint` of `sources`: the identity of the inputs."
    )


# --- data/preprocessed/state.json --------------------------------------------------------------


class SplitCount(_Part):
    name: str
    num_examples: int = Field(description="Rows written to `<name>.parquet`.")


class StateParams(_Part):
    ingest: dict[str, Any] = Field(description="The manifest's `params`.")
    preprocess: dict[str, Any] = Field(description="The `preprocess` params used (their dump).")


class PreprocessState(Artifact):
    """`data/preprocessed/state.json`: the stored features, the fitted state, the rows written."""

    TITLE: ClassVar[str] = "preprocess state"
    WRITER: ClassVar[str] = "the preprocess stage"

    features: list[FeatureInfo] = Field(
        description="The stored features, in column order (what `metadata.json` lists)."
    )
    state: dict[str, dict[str, Any]] = Field(
        description="Fitted state per feature name (means and standard deviations, vocabularies), as each feature kind in `dataops.features` finalizes it; features without state are absent."
    )
    splits: list[SplitCount] = Field(description="Rows written per split, in split order.")
    skipped: dict[str, int] = Field(
        description="Rows dropped under `on_error: skip` (ingest's and preprocess's), by reason, sorted."
    )
    inputs_fingerprint: str = Field(description="The manifest's `fingerprint`.")
    inputs: dict[str, SourceFiles] = Field(description="The manifest's `sources`.")
    params: StateParams

    @property
    def split_names(self) -> list[str]:
        return [s.name for s in self.splits]


# --- reports/validation.json -------------------------------------------------------------------


class ValidationReport(Artifact):
    """`reports/validation.json`: the validate stage's verdict, written whatever it is."""

    TITLE: ClassVar[str] = "validation report"
    WRITER: ClassVar[str] = "the validate stage"

    ok: bool = Field(description="True when there is no violation.")
    dataset: str = Field(description="The dataset's name.")
    fingerprint: str = Field(description="The validated dataset's `metadata.json` fingerprint.")
    num_examples: dict[str, int] = Field(description="Examples per split.")
    num_bytes: dict[str, int] = Field(description="Bytes of the shards per split.")
    num_shards: dict[str, int] = Field(description="Shards per split.")
    skipped: dict[str, int] = Field(description="The metadata's `skipped`.")
    violations: list[str] = Field(description="Every violation, one line each.")
    class_counts: dict[str, dict[str, dict[str, int]]] = Field(
        description="split → int64 scalar feature → value (as a string) → examples."
    )


# --- export.json ------------------------------------------------------------------------------


class ExportInfo(Artifact):
    """`export.json` beside an exported dataset (`dataops export`; in an HDF5 export, the root
    attribute `export`): what the loader checks before reading a snapshot export."""

    TITLE: ClassVar[str] = "export description"
    WRITER: ClassVar[str] = "`dataops export`"

    format: Literal["snapshot", "parquet", "hdf5"] = Field(description="The export format.")
    dataset: str = Field(description="The dataset's name.")
    fingerprint: str = Field(description="The exported dataset's `metadata.json` fingerprint.")
    num_examples: dict[str, int] = Field(description="Examples per split.")


# --- the view of a published report ------------------------------------------------------------


def whole_number(value: Any) -> int | None:
    """A whole number, or None: strings, booleans and floats with a fraction are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class PublishedReport(BaseModel):
    """What `dataops.release.publish` and the Datasets page take from a `reports/validation.json`
    committed at a version's tag. That file is history (and, on a shared repository,
    untrusted): it is salvaged, not validated. A field that does not hold what
    `ValidationReport` declares is None (empty for the maps); entries of the per-split maps that
    are not whole numbers are dropped; other keys are ignored. Its fields are a subset of
    `ValidationReport`'s (a test checks it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ok: bool | None = None
    fingerprint: str | None = None
    num_examples: dict[str, int] = Field(default_factory=dict)
    num_bytes: dict[str, int] = Field(default_factory=dict)
    violations: list[str] | None = None

    @field_validator("ok", "fingerprint", mode="before")
    @classmethod
    def _exact_or_none(cls, value: Any, info: ValidationInfo) -> Any:
        want = {"ok": bool, "fingerprint": str}[str(info.field_name)]
        return value if type(value) is want else None

    @field_validator("num_examples", "num_bytes", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any) -> dict[str, int]:
        if not isinstance(value, dict):
            return {}
        return {str(k): n for k, v in value.items() if (n := whole_number(v)) is not None}

    @field_validator("violations", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> list[str] | None:
        return [str(v) for v in value] if isinstance(value, list) else None

    @classmethod
    def salvage(cls, data: Any) -> PublishedReport:
        """The report's usable fields; all empty when `data` is not a JSON object."""
        return cls.model_validate(data if isinstance(data, dict) else {})


ARTIFACTS: dict[str, type[BaseModel]] = {
    "metadata": DatasetMetadata,
    "manifest": Manifest,
    "state": PreprocessState,
    "validation": ValidationReport,
    "export": ExportInfo,
}
"""Every typed file, by schema name: `dataops/schemas/<name>.schema.json`."""


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the artifact `name` (a key of `ARTIFACTS`), generated from its model."""
    schema = ARTIFACTS[name].model_json_schema()
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = SCHEMA_ID.format(name=name)
    return schema


def schema_path(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.schema.json"


def stale_schemas() -> list[str]:
    """The committed schemas that differ from their model (missing ones count as stale)."""
    stale = []
    for name in ARTIFACTS:
        path = schema_path(name)
        have = path.read_text(encoding="utf-8") if path.is_file() else None
        if have != dumps_json(json_schema(name)):
            stale.append(name)
    return stale


def write_schemas() -> list[Path]:
    """Regenerate every committed schema from its model."""
    out = []
    for name in ARTIFACTS:
        path = schema_path(name)
        path.write_text(dumps_json(json_schema(name)), encoding="utf-8")
        out.append(path)
    return out
