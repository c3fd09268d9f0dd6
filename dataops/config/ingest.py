"""The `ingest` section: the sources (format, path, columns, per-format reading options) and the
join on the key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from dataops.config.base import BatchRows, StrictModel

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


class SourceParams(StrictModel):
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


class IngestParams(StrictModel):
    key: str | None = Field(
        "id",
        description="Column the sources are joined on. Every row must appear in every source. null: keyless, each row's key is `<first source name>:<record index>` (see README).",
    )
    sources: list[SourceParams] = Field(
        min_length=1, description="The sources; the first one sets the row order."
    )
    batch_rows: BatchRows = Field(
        4096,
        description="Rows per row group of the snapshot, and per batch read from JSON, Parquet, arrays, images and CSV with image columns (other CSV is read in 8 MiB chunks).",
    )
    partition_bytes: int = Field(
        256 << 20,
        ge=1 << 10,
        description="Join partition size when several sources are joined: inputs larger than this are hash-partitioned on disk so memory stays bounded (one source is streamed).",
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
