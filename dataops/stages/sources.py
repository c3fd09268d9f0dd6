"""Readers for each supported source format, streaming `pyarrow` tables with a string key.
Over 400 lines: eight format readers over one Batch/RowErrors contract; left whole while another branch reworks exact input handling (a `sources/` package, one module per format, is the next split).

Each reader yields `Batch`es: the table (first column `__key`), the row labels a person would
use to find each record in that file (CSV/JSON Lines line numbers, JSON array elements, array
indices, image paths), and each row's record index in the source (0-based, counting bad rows,
not counting blank lines). A bad row is reported to `RowErrors`, which raises under
`on_error: fail` and, under `skip`, counts it and keeps its key (when it has one) so the join
can account for it once.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import json
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import IngestParams, SourceParams
from dataops.errors import ConfigError, DatasetError
from dataops.fsutil import sha256_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
KEYLESS_COLUMN = "key"
JSON_MAX_ELEMENT = 64 << 20  # characters of one element of a `json` array file


@dataclass
class BadRow:
    key: str | None
    seq: int
    label: str
    reason: str


@dataclass
class RowErrors:
    """Bad rows met while reading one source: raise under `fail`, count by reason under `skip`."""

    policy: str
    counts: dict[str, int] = field(default_factory=dict)
    keyed: list[BadRow] = field(default_factory=list)  # drained by ingest after each batch
    unkeyed: dict[str, int] = field(default_factory=dict)

    def bad(
        self,
        reason: str,
        message: str,
        *,
        key: str | None = None,
        seq: int | None = None,
        label: str = "",
    ) -> None:
        if self.policy == "fail":
            raise DatasetError(
                message + " (set dataset.on_error: skip to drop such rows and count them)"
            )
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if key is not None and seq is not None:
            self.keyed.append(BadRow(key, seq, label, reason))
        else:
            self.unkeyed[reason] = self.unkeyed.get(reason, 0) + 1


@dataclass(frozen=True)
class Batch:
    table: pa.Table  # first column `__key` (string)
    rows: pa.Array  # string label of each row
    seqs: np.ndarray  # int64 record index of each row in its source


@dataclass(frozen=True)
class Source:
    params: SourceParams
    path: Path  # resolved
    rel: str  # project-relative path (posix), as recorded in the manifest
    key: str  # key column name in the file (unused when keyless)
    label: str  # path as written in params.yaml, for messages
    index: int  # position in ingest.sources, for messages naming the key
    keyless_prefix: str | None = None  # keyless ingest: key = f"{prefix}:{record index}"
    allowed: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return self.params.name

    def files(self) -> list[Path]:
        """Every input file of this source, in a stable order."""
        if self.params.format == "image_folder":
            return [p for _, p in _image_files(self)]
        return [self.path]

    def option(self, name: str) -> str:
        return f"ingest.sources.{self.index}.{name}"


def _allowed_roots(params: IngestParams, root: Path) -> tuple[Path, ...]:
    return (root.resolve(), *((root / a).resolve() for a in params.allow_outside))


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def resolve_source(params: IngestParams, root: Path, index: int) -> Source:
    """Check one source's path (contained, right file type) and return it resolved."""
    sp = params.sources[index]
    key = f"ingest.sources.{index}.path"
    allowed = _allowed_roots(params, root)
    given = root / sp.path
    if not os.path.lexists(given):
        raise ConfigError(f"params.yaml: key '{key}': {sp.path} does not exist")
    try:
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} cannot be resolved ({err})"
        ) from None
    if not _inside(resolved, allowed):
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} resolves to {resolved}, outside the project "
            f"{allowed[0]}; list its folder in ingest.allow_outside to read it"
        )
    mode = os.stat(resolved).st_mode
    if sp.format == "image_folder":
        if not stat.S_ISDIR(mode):
            raise ConfigError(
                f"params.yaml: key '{key}': {sp.path} is not a folder (format image_folder)"
            )
    elif stat.S_ISDIR(mode):
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} is a folder, not a {sp.format} file"
        )
    elif not stat.S_ISREG(mode):
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} is a {_file_kind(mode)}, not a regular file"
        )
    lexical = Path(os.path.normpath(root.resolve() / sp.path))
    rel = Path(os.path.relpath(lexical, root.resolve())).as_posix()
    prefix = params.sources[0].name if params.key is None else None
    return Source(
        params=sp,
        path=resolved,
        rel=rel,
        key=sp.key or params.key or KEYLESS_COLUMN,
        label=sp.path,
        index=index,
        keyless_prefix=prefix,
        allowed=allowed,
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def manifest_entry(src: Source, root: Path) -> dict[str, Any]:
    """Content hash of every input file of a source, with paths relative to the project."""
    files = {}
    total = 0
    for p in src.files():
        rel = (Path(src.rel) / p.relative_to(src.path)) if p != src.path else Path(src.rel)
        files[rel.as_posix()] = sha256_file(p)
        total += p.stat().st_size
    entry: dict[str, Any] = {
        "format": src.params.format,
        "path": src.rel,
        "num_files": len(files),
        "num_bytes": total,
        "files": files,
    }
    if src.params.format == "image_folder":
        # Files an image folder holds but does not read (another suffix, or outside any class
        # folder) are counted, never dropped silently.
        ignored = _ignored_files(src)
        entry["ignored_files"] = {"count": len(ignored), "first": ignored[:5]}
    return entry


def input_bytes(src: Source) -> int:
    return sum(p.stat().st_size for p in src.files())


def _ignored_files(src: Source) -> list[str]:
    """Files under an image folder that are not read as images, relative to it, sorted."""
    root = src.path
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        depth = len(Path(dirpath).relative_to(root).parts)
        for name in sorted(filenames):
            if depth != 1 or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return out


def _image_files(src: Source) -> list[tuple[str, Path]]:
    root = src.path
    out = []
    for cls in sorted(d.name for d in root.iterdir() if d.is_dir()):
        for name in sorted(os.listdir(root / cls)):
            p = root / cls / name
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                if src.allowed and not _inside(p.resolve(), src.allowed):
                    raise ConfigError(
                        f"params.yaml: key '{src.option('path')}': {src.label}/{cls}/{name} "
                        f"resolves to {p.resolve()}, outside the project; list its folder in ingest.allow_outside"
                    )
                out.append((cls, p))
    return out


# --- encoding errors -------------------------------------------------------------------------


def encoding_error(src: Source) -> DatasetError:
    """One line naming the first byte of the file that the source's encoding cannot decode."""
    name = codecs.lookup(src.params.encoding).name
    dec = codecs.getincrementaldecoder(name)("strict")
    offset = 0  # bytes of the file before `chunk`
    lines = 1  # line number at `offset`
    with open(src.path, "rb") as f:
        if name == "utf-8" and f.read(3) != codecs.BOM_UTF8:
            f.seek(0)
        offset = f.tell()
        while True:
            chunk = f.read(1 << 20)
            state = dec.getstate()
            held = len(state[0]) if isinstance(state, tuple) and isinstance(state[0], bytes) else 0
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                pos = max(offset - held + err.start, 0)
                lines += chunk[: max(pos - offset, 0)].count(b"\n")
                return DatasetError(
                    f"{src.label}: byte {pos} (line {lines}) is not valid {src.params.encoding}"
                    f" (0x{_byte_at(src.path, pos):02x}); set {src.option('encoding')} to the"
                    " file's encoding, e.g. latin-1"
                )
            if not chunk:
                break
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return DatasetError(f"{src.label}: cannot be decoded as {src.params.encoding}")


WIDE_SNIFF_BYTES = 1 << 16


def refuse_wide_text(src: Source) -> None:
    """UTF-16/32 text read under a byte encoding (UTF-8 by default) is NUL-riddled garbage: a
    wrong column count, a header like 'i\\x00d\\x00'. One line naming the file and the encoding
    to declare instead, from its first 64 KiB: a UTF-16/32 byte-order mark (under UTF-8, where
    it cannot be text), or NUL bytes making up a quarter of it or more (text has none)."""
    codec = codecs.lookup(src.params.encoding).name
    if codec.startswith(("utf-16", "utf-32")):
        return
    with open(src.path, "rb") as f:
        head = f.read(WIDE_SNIFF_BYTES)
    enc = src.params.encoding
    if codec == "utf-8":
        for bom, name, declare in (
            (codecs.BOM_UTF32_LE, "UTF-32-LE", "utf-32"),
            (codecs.BOM_UTF32_BE, "UTF-32-BE", "utf-32"),
            (codecs.BOM_UTF16_LE, "UTF-16-LE", "utf-16"),
            (codecs.BOM_UTF16_BE, "UTF-16-BE", "utf-16"),
        ):
            if head.startswith(bom):
                raise DatasetError(
                    f"{src.label}: starts with a {name} byte-order mark: not {enc} text; "
                    f"set {src.option('encoding')} to {declare}"
                )
    nul = head.count(0)
    if not head or nul * 4 < len(head):
        return
    guess = _wide_guess(head)
    what = f"looks like {guess.upper()} text without a byte-order mark" if guess else "is binary"
    raise DatasetError(
        f"{src.label}: {nul} of its first {len(head)} bytes are NUL: it {what}, not {enc} "
        f"text; set {src.option('encoding')} to {guess or 'the encoding of its text'}"
    )


def _wide_guess(head: bytes) -> str | None:
    """The UTF-16/32 byte order whose NUL pattern `head` has (mostly-ASCII or BMP text), or None."""
    n = len(head) // 4
    if n == 0:
        return None
    at = [head[k : 4 * n : 4].count(0) / n for k in range(4)]  # NUL share by offset mod 4
    if at[2] > 0.99 and at[3] > 0.99 and at[0] < 0.5:
        return "utf-32-le"
    if at[0] > 0.99 and at[1] > 0.99 and at[3] < 0.5:
        return "utf-32-be"
    even, odd = (at[0] + at[2]) / 2, (at[1] + at[3]) / 2
    if odd >= 0.5 and even <= 0.1:
        return "utf-16-le"
    if even >= 0.5 and odd <= 0.1:
        return "utf-16-be"
    return None


def _byte_at(path: Path, pos: int) -> int:
    with open(path, "rb") as f:
        f.seek(pos)
        b = f.read(1)
    return b[0] if b else 0


def _codec(encoding: str) -> str:
    """Python codec for reading: UTF-8 skips a byte-order mark."""
    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name == "utf-8" else name


# --- keys and row filtering ------------------------------------------------------------------


def _key_array(values: Any, src: Source) -> pa.Array:
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_floating(arr.type):
        raise DatasetError(
            f"{src.label}: key column '{src.key}' holds floats; keys must be integers or strings"
        )
    if (
        pa.types.is_integer(arr.type)
        or pa.types.is_large_string(arr.type)
        or pa.types.is_null(arr.type)
    ):
        arr = arr.cast(pa.string())
    elif not pa.types.is_string(arr.type):
        raise DatasetError(
            f"{src.label}: key column '{src.key}' has type {arr.type}; keys must be integers or strings"
        )
    return arr


def numbered(prefix: str, numbers: np.ndarray) -> pa.Array:
    """`f"{prefix}{n}"` for each integer `n`, as an Arrow string array: Arrow's integer-to-text
    cast with the prefix inserted in front (several times faster than
    `binary_join_element_wise`, which broadcasts the prefix per row)."""
    digits = pa.array(np.asarray(numbers, dtype=np.int64), pa.int64()).cast(pa.string())
    return pc.binary_replace_slice(digits, 0, 0, prefix)


def keyless_keys(prefix: str, seqs: np.ndarray) -> pa.Array:
    return numbered(prefix + ":", seqs)


def _finish(
    table: pa.Table,
    src: Source,
    rows: Any,
    seqs: np.ndarray,
    errors: RowErrors,
    key_values: Any = None,
) -> Batch:
    """Normalize the key column to strings, load image path columns, drop bad rows."""
    labels = rows if isinstance(rows, pa.Array) else pa.array(rows, pa.string())
    rows = _Labels(labels)
    if src.keyless_prefix is not None:
        key_values = keyless_keys(src.keyless_prefix, seqs)
    elif key_values is None:
        if src.key not in table.column_names:
            raise ConfigError(
                f"params.yaml: source '{src.name}': key column '{src.key}' not in {src.label} (it has {table.column_names})"
            )
        key_values = table.column(src.key)
        table = table.drop_columns([src.key])
    table = _select_nokey(table, src)
    keys = _key_array(key_values, src)
    ok = np.ones(len(keys), dtype=bool)
    if keys.null_count:
        for i in np.flatnonzero(keys.is_null().to_numpy(zero_copy_only=False)):
            errors.bad(
                "missing_key",
                f"{src.label}: {rows[i]}: key column '{src.key}' is empty",
                seq=int(seqs[i]),
                label=rows[i],
            )
            ok[i] = False
    key_list: list[str] | None = None
    for col in src.params.image_columns:
        if col not in table.column_names:
            raise ConfigError(
                f"params.yaml: source '{src.name}': image column '{col}' not in {src.label}"
            )
        if key_list is None:
            key_list = keys.to_pylist()
        paths = table.column(col).to_pylist()
        data: list[bytes | None] = []
        for j, rel in enumerate(paths):
            if rel is None or not ok[j]:
                data.append(None)
                continue
            p = src.path.parent / rel
            why = None
            if src.allowed and not _inside(p.resolve(), src.allowed):
                why = "it lies outside the project (see ingest.allow_outside)"
            else:
                try:
                    data.append(p.read_bytes())
                except OSError as err:
                    why = str(err.strerror)
            if why is not None:
                errors.bad(
                    "unreadable_image",
                    f"{src.label}: {rows[j]}: image file {rel!r} cannot be read: {why}",
                    key=key_list[j],
                    seq=int(seqs[j]),
                    label=rows[j],
                )
                ok[j] = False
                data.append(None)
        table = table.set_column(table.column_names.index(col), col, pa.array(data, pa.binary()))
    table = table.add_column(0, "__key", keys)
    if not ok.all():
        table = table.filter(pa.array(ok))
        labels = labels.filter(pa.array(ok))
        seqs = seqs[ok]
    return Batch(table, labels, np.asarray(seqs, dtype=np.int64))


class _Labels:
    """Row labels by index, for messages (read from Arrow only when a row is bad)."""

    def __init__(self, arr: pa.Array) -> None:
        self.arr = arr

    def __getitem__(self, i: int) -> str:
        return str(self.arr[int(i)].as_py())


def _select_nokey(table: pa.Table, src: Source) -> pa.Table:
    if src.params.columns is None:
        return table
    wanted = [c for c in src.params.columns if c != src.key or src.keyless_prefix is not None]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"params.yaml: source '{src.name}': columns {missing} not in {src.label} (it has {table.column_names})"
        )
    return table.select(wanted)


def _fixed_column(arr: np.ndarray) -> pa.Array:
    """A numpy column (rows on axis 0) as Arrow: scalars as is, higher ranks flattened."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind in "SUO":
        return pa.array(arr.tolist())
    if arr.ndim == 1:
        return pa.array(arr)
    width = int(np.prod(arr.shape[1:]))
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width)


def _shape_meta(arrays: dict[str, np.ndarray]) -> dict[str, list[int]]:
    return {k: list(v.shape[1:]) for k, v in arrays.items() if v.ndim > 1}


def read_source(
    src: Source, batch_rows: int, errors: RowErrors, part: CsvRange | None = None
) -> Iterator[Batch]:
    """Stream batches; each table's first column is `__key` (string). `part`: only that byte
    range of a CSV source (see `csv_ranges`)."""
    fmt = src.params.format
    if fmt in ("csv", "jsonl", "json"):
        refuse_wide_text(src)
    if fmt == "csv":
        yield from _read_csv(src, batch_rows, errors, part)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(src.path, pre_buffer=False)  # else row groups stay buffered
        except (pa.ArrowInvalid, OSError) as err:
            raise DatasetError(f"{src.label}: not a readable Parquet file: {err}") from None
        start = 0
        for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
            seqs = np.arange(start, start + batch.num_rows, dtype=np.int64)
            rows = numbered("row ", seqs)
            start += batch.num_rows
            yield _finish(pa.Table.from_batches([batch]), src, rows, seqs, errors)
    elif fmt in ("jsonl", "json"):
        yield from _read_json(src, batch_rows, errors)
    elif fmt in ("npy", "npz", "hdf5"):
        yield from _read_arrays(src, batch_rows, errors)
    elif fmt == "image_folder":
        files = _image_files(src)
        for s in range(0, len(files), batch_rows):
            chunk = files[s : s + batch_rows]
            keys = [p.stem for _, p in chunk]
            rows = [p.relative_to(src.path).as_posix() for _, p in chunk]
            table = pa.table(
                {
                    src.params.image_column: pa.array(
                        [p.read_bytes() for _, p in chunk], pa.binary()
                    ),
                    src.params.label_column: pa.array([c for c, _ in chunk], pa.string()),
                }
            )
            seqs = np.arange(s, s + len(chunk), dtype=np.int64)
            yield _finish(table, src, rows, seqs, errors, key_values=pa.array(keys, pa.string()))
    else:  # pragma: no cover - the config model forbids it
        raise ConfigError(f"unknown source format {fmt!r}")


# --- CSV -------------------------------------------------------------------------------------


def _csv_read_options(src: Source, block_size: int = 1 << 22) -> Any:
    import pyarrow.csv as pcsv

    p = src.params
    codec = codecs.lookup(p.encoding).name
    return pcsv.ReadOptions(
        use_threads=False,
        block_size=block_size,
        encoding="utf8" if codec == "utf-8" else codec,
        column_names=None if p.header else p.column_names,
        autogenerate_column_names=False,
    )


def _csv_parse_options(src: Source, handler: Any) -> Any:
    import pyarrow.csv as pcsv

    p = src.params
    return pcsv.ParseOptions(
        delimiter=p.delimiter,
        quote_char=p.quote_char if p.quote_char is not None else False,
        ignore_empty_lines=True,  # blank lines are found by `_scan_chunk`
        newlines_in_values=False,
        invalid_row_handler=handler,
    )


def _csv_header(src: Source) -> list[str]:
    """Column names as Arrow itself reads them (same decoding, BOM skipped, same quoting)."""
    import pyarrow.csv as pcsv

    if not src.params.header:
        return list(src.params.column_names or [])
    try:
        for block in (1 << 16, 1 << 22, 1 << 26):  # the header line must fit in one block
            try:
                reader = pcsv.open_csv(
                    src.path,
                    read_options=_csv_read_options(src, block),
                    parse_options=_csv_parse_options(src, lambda row: "skip"),
                )
                break
            except pa.ArrowInvalid as err:
                if "straddling" not in str(err) or block == 1 << 26:
                    raise
        names = list(reader.schema.names)
        reader.close()
    except UnicodeDecodeError:
        raise encoding_error(src) from None
    except pa.ArrowInvalid as err:
        if "utf8" in str(err).lower() or "utf-8" in str(err).lower():
            raise encoding_error(src) from None
        if "Empty CSV file" in str(err):
            raise DatasetError(f"{src.label}: empty CSV file (no header row)") from None
        raise DatasetError(f"{src.label}: cannot parse CSV header: {err}") from None
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{src.label}: line 1: the header repeats column names {dup}")
    return names


@dataclass(frozen=True)
class CsvRange:
    """Lines of a CSV file read on their own: the bytes [start, stop) of the file (cut at line
    ends; stop None: to the end), whose first line has number `line` and is preceded by `seq`
    records (lines that are not blank)."""

    start: int
    stop: int | None
    line: int
    seq: int


def _read_csv(
    src: Source, batch_rows: int, errors: RowErrors, part: CsvRange | None = None
) -> Iterator[Batch]:
    header = _csv_header(src)
    if part is None:
        part = CsvRange(-1, None, 2 if src.params.header else 1, 0)
    key_index = header.index(src.key) if src.key in header else None
    cursor = _LineCursor(part.line, part.seq)
    first = cursor.first
    bad = cursor.bad
    fatal: list[str] = []

    def on_invalid(row: Any, number: int) -> str:
        # An exception raised here would be swallowed by Arrow: remember it, stop the reader.
        msg = f"{src.label}: line {number}: expected {row.expected_columns} columns, got {row.actual_columns}"
        if errors.policy == "fail":
            fatal.append(msg)
            return "error"
        seq = number - first - cursor.blanks_before(number)
        key = None
        if src.keyless_prefix is not None:
            key = f"{src.keyless_prefix}:{seq}"
        elif key_index is not None:
            fields = _split_row(row.text, src)
            if key_index < len(fields) and fields[key_index] not in src.params.null_values:
                key = fields[key_index]
        errors.bad("malformed_row", msg, key=key, seq=seq, label=f"line {number}")
        bad.append(number)
        return "skip"

    try:
        yield from _csv_batches(src, header, batch_rows, errors, on_invalid, cursor, part)
    except UnicodeDecodeError:
        raise encoding_error(src) from None
    except pa.ArrowInvalid as err:
        if fatal:
            errors.bad("malformed_row", fatal[0])
        if "utf8" in str(err).lower():
            raise encoding_error(src) from None
        raise DatasetError(f"{src.label}: cannot parse CSV: {err}") from None


def _split_row(text: str, src: Source) -> list[str]:
    q = src.params.quote_char
    reader = csv.reader(
        [text],
        delimiter=src.params.delimiter,
        quotechar=q or '"',
        quoting=csv.QUOTE_MINIMAL if q else csv.QUOTE_NONE,
    )
    return next(reader, [])


CSV_CHUNK_BYTES = 8 << 20


def _utf8_chunks(src: Source, start: int = -1, stop: int | None = None) -> Iterator[bytes]:
    """The data lines (from line 2 with a header, else 1; or the bytes [start, stop) of the
    file, see `csv_ranges`) as UTF-8 bytes in chunks of about CSV_CHUNK_BYTES cut at line
    ends. UTF-8 input is passed through (Arrow checks it); any other encoding is decoded
    incrementally and re-encoded."""
    codec = codecs.lookup(src.params.encoding).name
    decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)("strict")
    with open(src.path, "rb") as f:
        size = os.fstat(f.fileno()).st_size if stop is None else stop
        if start >= 0:
            f.seek(start)
        elif decoder is None and f.read(3) != codecs.BOM_UTF8:
            f.seek(0)

        def read(n: int) -> bytes:
            data = f.read(max(0, min(n, size - f.tell())))
            if decoder is None:
                return data
            return decoder.decode(data, final=not data).encode("utf-8")

        rest = b""
        eof = False
        if src.params.header and start < 0:
            while b"\n" not in rest and not eof:
                data = read(1 << 16)
                eof = not data and f.tell() >= size
                rest += data
            if b"\n" not in rest:
                return
            rest = rest[rest.index(b"\n") + 1 :]
        while True:
            raw_more = f.tell() < size
            if raw_more:
                data = read(CSV_CHUNK_BYTES)
            else:  # a sequence cut short at the end of the file is an error, not dropped
                data = decoder.decode(b"", final=True).encode("utf-8") if decoder else b""
            buf = rest + data if rest else data
            if raw_more:
                cut = buf.rfind(b"\n")
                if cut < 0:
                    rest = buf
                    continue
                chunk, rest = buf[: cut + 1], buf[cut + 1 :]
            else:
                chunk, rest = buf, b""
            del buf, data  # not held while the chunk is parsed
            if chunk:
                yield chunk
            if not raw_more:
                return


def csv_ranges(src: Source, target_bytes: int) -> list[tuple[int, int | None]]:
    """The data lines of a CSV source as byte ranges `(start, stop)` of about `target_bytes`,
    cut after a newline (stop None: to the end), for readers that each take one. UTF-8 only
    (a newline byte is a newline there); in another encoding the whole file is one range
    `(-1, None)`, as is a file without data lines."""
    _csv_header(src)  # the same checks and messages as a whole read
    if codecs.lookup(src.params.encoding).name != "utf-8":
        return [(-1, None)]
    with open(src.path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start: int | None = 3 if f.read(3) == codecs.BOM_UTF8 else 0
        if src.params.header:
            start = _next_line(f, start or 0)
        if start is None:
            return [(-1, None)]
        spans: list[tuple[int, int | None]] = []
        while (cut := _next_line(f, start + target_bytes)) is not None and cut < size:
            spans.append((start, cut))
            start = cut
        spans.append((start, None))
    return spans


def _next_line(f: Any, pos: int) -> int | None:
    """Offset just after the first newline at or after `pos` (None: there is none)."""
    f.seek(pos)
    while block := f.read(1 << 16):
        at = block.find(b"\n")
        if at >= 0:
            return pos + at + 1
        pos += len(block)
    return None


def count_lines(src: Source, start: int, stop: int | None) -> tuple[int, int]:
    """Newlines and blank lines of the byte range [start, stop) of a CSV source."""
    newlines = blanks = 0
    try:
        for chunk in _utf8_chunks(src, start, stop):
            b, n = _scan_chunk(chunk, 0)
            newlines += n
            blanks += len(b)
    except UnicodeDecodeError:
        raise encoding_error(src) from None
    return newlines, blanks


def _scan_chunk(chunk: bytes, first_line: int) -> tuple[list[int], int]:
    """The line numbers of the empty lines of a chunk (Arrow skips them without a word: lines
    holding nothing, or only a carriage return, before their newline or the chunk's end), and
    the chunk's count of newlines. Found from byte pairs and triples (`\\n\\n`, `\\n\\r\\n`)
    in a few vectorized passes; the newlines are located only when there is a blank line."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    nl = a == 10
    starts = [
        np.flatnonzero(nl[:-1] & nl[1:]) + 1,
        np.flatnonzero(nl[:-2] & nl[2:] & (a[1:-1] == 13)) + 1,
    ]
    if chunk[:1] == b"\n" or chunk[:2] == b"\r\n" or chunk == b"\r":
        starts.append(np.zeros(1, np.int64))
    if len(chunk) >= 2 and chunk.endswith(b"\n\r"):
        starts.append(np.full(1, len(chunk) - 1, np.int64))
    at = np.sort(np.concatenate(starts))
    newlines = int(np.count_nonzero(nl))
    if not len(at):
        return [], newlines
    return (first_line + np.searchsorted(np.flatnonzero(nl), at)).tolist(), newlines


def _csv_record_batches(
    src: Source, header: list[str], on_invalid: Any, cursor: _LineCursor, part: CsvRange
) -> Iterator[pa.RecordBatch]:
    """The data rows as Arrow batches, a chunk of the file at a time (Arrow's streaming CSV
    reader reads ahead without bound: its memory grew with the file), so memory does not
    depend on the file's size. Rows do not span lines (quoted newlines are not supported), so a
    cut at a line end never splits one."""
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        strings_can_be_null=True,
        null_values=list(src.params.null_values),
        quoted_strings_can_be_null=False,
    )
    next_base = part.line  # line number of the next chunk's first line
    for chunk in _utf8_chunks(src, part.start, part.stop):
        base = next_base
        blanks, newlines = _scan_chunk(chunk, base)
        next_base += newlines
        cursor.blank.extend(blanks)

        def handler(row: Any, base: int = base, blanks: list[int] = blanks) -> str:
            # Arrow numbers the non-empty lines of the chunk from 1
            line = base + row.number - 1
            for b in blanks:
                if b > line:
                    break
                line += 1
            return on_invalid(row, line)

        read = pcsv.ReadOptions(
            use_threads=False, block_size=len(chunk) + 1, encoding="utf8", column_names=header
        )
        table = pcsv.read_csv(
            pa.py_buffer(chunk),
            read_options=read,
            parse_options=_csv_parse_options(src, handler),
            convert_options=convert,
        )
        yield from table.to_batches()


def _csv_batches(
    src: Source,
    header: list[str],
    batch_rows: int,
    errors: RowErrors,
    on_invalid: Any,
    cursor: _LineCursor,
    part: CsvRange,
) -> Iterator[Batch]:
    """One batch per chunk of the file (about CSV_CHUNK_BYTES of text, which bounds memory):
    per-batch work is then paid a few times per 8 MiB, not every `batch_rows` rows; the
    snapshot's row groups are cut by the writer. A source with image columns loads a file per
    row and per image column, so its batches stay at `batch_rows` rows (the bound on memory)."""
    for batch in _csv_record_batches(src, header, on_invalid, cursor, part):
        step = batch_rows if src.params.image_columns else max(batch.num_rows, 1)
        for start in range(0, batch.num_rows, step):
            piece = batch.slice(start, step)
            rows, seqs = cursor.take(piece.num_rows)
            yield _finish(pa.Table.from_batches([piece]), src, rows, seqs, errors)


class _LineCursor:
    """Line number and record index of each row Arrow returns, skipping blank lines (not
    records) and bad lines (records that were skipped); vectorized."""

    def __init__(self, line: int, seq: int = 0) -> None:
        # record index of line L (not blank, no blank line before it here): L - first
        self.first = line - seq
        self.line = line  # the next line to consider
        # blank and bad line numbers, appended in line order while Arrow parses; those before
        # `line` are dropped once used (only the count of blank ones is kept)
        self.blank: list[int] = []
        self.bad: list[int] = []
        self.blank_dropped = 0

    def blanks_before(self, line: int) -> int:
        return self.blank_dropped + bisect.bisect_left(self.blank, line)

    def take(self, n: int) -> tuple[pa.Array, np.ndarray]:
        blank = np.asarray(self.blank, dtype=np.int64)
        skip = np.union1d(blank, np.asarray(self.bad, dtype=np.int64))
        skip = skip[skip >= self.line]
        cand = np.arange(self.line, self.line + n + len(skip), dtype=np.int64)
        lines = cand[~np.isin(cand, skip, assume_unique=True)][:n]
        if len(lines):
            self.line = int(lines[-1]) + 1
        seqs = lines - self.first - self.blank_dropped - np.searchsorted(blank, lines)
        done = int(np.searchsorted(blank, self.line))
        del self.blank[:done]
        self.blank_dropped += done
        del self.bad[: int(np.searchsorted(np.asarray(self.bad, dtype=np.int64), self.line))]
        return numbered("line ", lines), seqs


# --- JSON Lines and JSON arrays ---------------------------------------------------------------


class _BadNumber(str):
    """A JSON number float64 cannot hold (it would become inf)."""


def _parse_float(text: str) -> float | _BadNumber:
    v = float(text)
    return _BadNumber(text) if math.isinf(v) else v


class _DuplicateKey(ValueError):
    """An object names a key twice (Python's json would keep the last value silently)."""


class _Malformed:
    """A JSON array element that parsed but is not a usable record."""

    def __init__(self, msg: str) -> None:
        self.msg = msg


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"key {dup!r} appears twice in one object")
    return obj


_DECODER = json.JSONDecoder(parse_float=_parse_float, object_pairs_hook=_unique_object)
_LENIENT = json.JSONDecoder(parse_float=_parse_float)
_EXACT_MAX = 1 << 63
_SAFE_INT = 1 << 53  # every integer up to this is a float64 exactly


class _Type:
    """The type of one value position (a column, a list's items, a struct field), widened over
    the whole source: null → any; int → float64 when a float appears (only if every integer
    seen is exactly a float64); nothing else. `declared` types never widen."""

    __slots__ = ("kind", "declared", "item", "fields", "float_at", "inexact_int")

    def __init__(self, kind: str | None = None, declared: bool = False) -> None:
        self.kind = kind
        self.declared = declared
        self.item: _Type | None = None
        self.fields: dict[str, _Type] = {}
        self.float_at: str | None = None
        self.inexact_int: tuple[int, str] | None = None

    @staticmethod
    def of_declared(name: str) -> _Type:
        kinds = {"string": "str", "int64": "int", "float64": "float", "bool": "bool"}
        if name.startswith("list<"):
            t = _Type("list", True)
            t.item = _Type.of_declared(name[5:-1])
            return t
        return _Type(kinds[name], True)

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
        if isinstance(v, _BadNumber):
            return f"number {v} is out of float64 range"
        kind = _kind_of(v)
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
            return f"{_show(v)} is {_kind_name(kind)}, the column is {self.describe()}"
        if kind == "float" and self.float_at is None:
            self.float_at = where
        if kind == "list":
            if self.item is None:
                self.item = _Type()
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
                    t = self.fields[k] = _Type()
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
        if isinstance(v, _BadNumber):
            raise ValueError(f"number {v} is out of float64 range")
        kind = _kind_of(v)
        if kind == self.kind:
            if kind == "int" and not -_EXACT_MAX <= v < _EXACT_MAX:
                raise ValueError(f"integer {v} is out of int64 range")
            if kind == "list":
                item = self.item or _Type()
                return [item.convert(x) for x in v]
            if kind == "struct":
                return {k: t.convert(v.get(k)) for k, t in self.fields.items()}
            return v
        if kind == "int" and self.kind == "float":
            f = float(v)
            if f != v:
                raise ValueError(f"integer {v} cannot be stored exactly as float64")
            return f
        raise ValueError(f"{_show(v)} is {_kind_name(kind)}, the column is {self.describe()}")


def _kind_of(v: Any) -> str:
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


def _kind_name(kind: str) -> str:
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


def _json_records(src: Source, errors: RowErrors, counting: bool) -> Iterator[tuple[int, str, Any]]:
    """Every record as `(record index, label, object)`; malformed ones reported (and counted
    only when `counting`, i.e. on the pass that yields rows)."""
    enc = _codec(src.params.encoding)
    try:
        with open(src.path, encoding=enc, newline=None) as f:
            if src.params.format == "jsonl":
                yield from _jsonl_lines(f, src, errors, counting)
            else:
                yield from _json_array(f, src, errors, counting)
    except UnicodeDecodeError:
        raise encoding_error(src) from None


def _jsonl_lines(
    f: Any, src: Source, errors: RowErrors, counting: bool
) -> Iterator[tuple[int, str, Any]]:
    seq = 0
    for number, text in enumerate(f, start=1):
        if not text.strip():
            continue
        label = f"line {number}"
        try:
            rec = _DECODER.decode(text)
        except (ValueError, RecursionError) as err:
            why = (
                "nested deeper than Python's JSON reader goes"
                if isinstance(err, RecursionError)
                else err
            )
            if counting:
                errors.bad(
                    "malformed_row",
                    f"{src.label}: {label}: not valid JSON: {why}",
                    seq=seq,
                    label=label,
                )
            seq += 1
            continue
        yield seq, label, rec
        seq += 1


def _json_array(
    f: Any, src: Source, errors: RowErrors, counting: bool
) -> Iterator[tuple[int, str, Any]]:
    """Stream the elements of one top-level JSON array; one element is at most
    JSON_MAX_ELEMENT characters (memory stays bounded by that)."""
    buf = ""
    pos = 0
    line = 1  # line number at buf[counted]
    counted = 0
    eof = False

    def more(need_more_than: int) -> bool:
        nonlocal buf, pos, counted, line, eof
        if eof:
            return False
        if pos > (1 << 20):
            line += buf.count("\n", counted, pos)
            buf, counted, pos = buf[pos:], 0, 0
        chunk = f.read(max(1 << 20, need_more_than))
        if not chunk:
            eof = True
            return False
        buf += chunk
        return True

    def skip_ws() -> bool:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return True
            if not more(0):
                return False

    def where() -> int:
        nonlocal line, counted
        line += buf.count("\n", counted, pos)
        counted = pos
        return line

    if not skip_ws():
        raise DatasetError(f"{src.label}: empty file (format json expects one array of objects)")
    if buf[pos] != "[":
        raise DatasetError(
            f"{src.label}: line {where()}: format json expects one top-level array of objects; use format jsonl for one object per line"
        )
    pos += 1
    seq = 0
    while True:
        if not skip_ws():
            raise DatasetError(
                f"{src.label}: line {where()}: the array is not closed (truncated file?)"
            )
        if buf[pos] == "]" and seq == 0:
            pos += 1
            break
        start_line = where()
        label = f"element {seq} (line {start_line})"
        decoder, dup = _DECODER, None
        while True:
            try:
                rec, end = decoder.raw_decode(buf, pos)
                if end == len(buf) and not eof and more(0):
                    continue  # a number may go on in the next chunk
                break
            except _DuplicateKey as err:
                decoder, dup = _LENIENT, str(err)  # parse it again only to find its end
            except RecursionError:
                raise DatasetError(
                    f"{src.label}: {label}: not valid JSON: nested deeper than Python's JSON reader goes"
                ) from None
            except json.JSONDecodeError as err:
                if len(buf) - pos > JSON_MAX_ELEMENT:
                    raise DatasetError(
                        f"{src.label}: {label}: not valid JSON or longer than {JSON_MAX_ELEMENT} characters: {err.msg}"
                    ) from None
                if not more(len(buf) - pos):
                    raise DatasetError(
                        f"{src.label}: line {start_line + buf.count(chr(10), pos, err.pos)}: not valid JSON: {err.msg}"
                    ) from None
        pos = end
        yield seq, label, (rec if dup is None else _Malformed(dup))
        seq += 1
        if not skip_ws():
            raise DatasetError(
                f"{src.label}: line {where()}: the array is not closed (truncated file?)"
            )
        if buf[pos] == ",":
            pos += 1
            continue
        if buf[pos] == "]":
            pos += 1
            break
        raise DatasetError(f"{src.label}: line {where()}: expected ',' or ']' after {label}")
    if skip_ws():
        raise DatasetError(f"{src.label}: line {where()}: text after the closing ']' of the array")


def _json_key(rec: dict[str, Any], src: Source, seq: int) -> str | None:
    if src.keyless_prefix is not None:
        return f"{src.keyless_prefix}:{seq}"
    k = rec.get(src.key)
    if isinstance(k, bool) or not isinstance(k, int | str):
        return None
    return str(k)


def infer_json_types(src: Source) -> tuple[dict[str, _Type], bool]:
    """Pass 1: the type of every column, from the whole source (or `schema:`); and whether
    every value already has its column's type (no conflict, no declared type), so pass 2 may
    hand the records to Arrow as they are."""
    declared = src.params.schema_ or {}
    wanted = None
    if src.params.columns is not None:
        wanted = set(src.params.columns) | set(src.params.image_columns)
        if src.keyless_prefix is None:
            wanted.add(src.key)
    cols: dict[str, _Type] = {}
    clean = not declared
    probe = RowErrors("skip")  # malformed lines are reported by pass 2
    for _, label, rec in _json_records(src, probe, counting=False):
        if not isinstance(rec, dict):
            continue
        for k, v in rec.items():
            if wanted is not None and k not in wanted:
                continue
            t = cols.get(k)
            if t is None:
                t = cols[k] = _Type.of_declared(declared[k]) if k in declared else _Type()
            if t.observe(v, label) is not None:
                clean = False
    for k, decl in declared.items():
        cols.setdefault(k, _Type.of_declared(decl))
    for k, t in cols.items():
        _check_exact(t, src, k)
    return cols, clean


def _check_exact(t: _Type, src: Source, column: str) -> None:
    if t.kind == "float" and not t.declared and t.inexact_int is not None:
        v, at = t.inexact_int
        raise DatasetError(
            f"{src.label}: column '{column}' mixes floats (first at {t.float_at}) with integers "
            f"float64 cannot hold exactly ({v} at {at}); declare its type in {src.option('schema')}"
        )
    if t.item is not None:
        _check_exact(t.item, src, column)
    for k, f in t.fields.items():
        _check_exact(f, src, f"{column}.{k}")


def _read_json(src: Source, batch_rows: int, errors: RowErrors) -> Iterator[Batch]:
    types, clean = infer_json_types(src)
    schema = pa.schema([(k, t.arrow()) for k, t in types.items()])
    records: list[dict[str, Any]] = []
    rows: list[str] = []
    seqs: list[int] = []

    def convert(rec: dict[str, Any], seq: int, label: str) -> dict[str, Any] | None:
        """The record in its columns' types, or None (a bad row, reported)."""
        out = {}
        for k, t in types.items():
            try:
                out[k] = t.convert(rec.get(k))
            except ValueError as err:
                errors.bad(
                    "wrong_type",
                    f"{src.label}: {label}: column '{k}': {err}",
                    key=_json_key(rec, src, seq),
                    seq=seq,
                    label=label,
                )
                return None
        return out

    def flush() -> Batch:
        nonlocal records, rows, seqs
        if clean:
            # pass 1 saw every value fit its column: Arrow converts them as they are, unless
            # an integer float64 holds exactly is beyond what Arrow converts (2**53): then
            # each record goes through `convert`
            try:
                table = pa.Table.from_pylist(records, schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
                kept = [
                    (out, r, q)
                    for rec, r, q in zip(records, rows, seqs, strict=True)
                    if (out := convert(rec, q, r)) is not None
                ]
                records = [k[0] for k in kept]
                rows = [k[1] for k in kept]
                seqs = [k[2] for k in kept]
                table = pa.Table.from_pylist(records, schema=schema)
        else:
            table = pa.Table.from_pylist(records, schema=schema)
        return _finish(table, src, rows, np.asarray(seqs, dtype=np.int64), errors)

    for seq, label, rec in _json_records(src, errors, counting=True):
        if isinstance(rec, _Malformed):
            errors.bad(
                "malformed_row",
                f"{src.label}: {label}: not valid JSON: {rec.msg}",
                seq=seq,
                label=label,
            )
            continue
        if not isinstance(rec, dict):
            errors.bad(
                "malformed_row",
                f"{src.label}: {label}: not a JSON object ({_kind_name(_kind_of(rec))})",
                seq=seq,
                label=label,
            )
            continue
        if not clean:
            out = convert(rec, seq, label)
            if out is None:
                continue
            rec = out
        records.append(rec)
        rows.append(label)
        seqs.append(seq)
        if len(records) >= batch_rows:
            yield flush()
            records, rows, seqs = [], [], []
    if records:
        yield flush()


# --- numpy / HDF5 ----------------------------------------------------------------------------


def _read_arrays(src: Source, batch_rows: int, errors: RowErrors) -> Iterator[Batch]:
    fmt = src.params.format
    handle: Any = None
    try:
        if fmt == "npy":
            arrays = {src.name: np.load(src.path, mmap_mode="r", allow_pickle=False)}
        elif fmt == "npz":
            handle = np.load(src.path, allow_pickle=False)
            names = src.params.columns or list(handle.files)
            arrays = {
                n: handle[n]
                for n in dict.fromkeys(names + ([src.key] if src.key in handle.files else []))
            }
        else:
            import h5py

            handle = h5py.File(src.path, "r")
            names = src.params.columns or sorted(
                k for k, v in handle.items() if isinstance(v, h5py.Dataset)
            )
            if src.key in handle and src.key not in names:
                names.append(src.key)
            arrays = {n: handle[n] for n in names}
    except (ValueError, OSError) as err:
        raise DatasetError(f"{src.label}: not a readable {fmt} file: {err}") from None
    try:
        lengths = {n: a.shape[0] for n, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DatasetError(f"{src.label}: arrays have different lengths on axis 0: {lengths}")
        total = next(iter(lengths.values()))
        key_arr = arrays.pop(src.key, None) if src.keyless_prefix is None else None
        for s in range(0, total, batch_rows):
            e = min(total, s + batch_rows)
            cols = {n: _fixed_column(np.asarray(a[s:e])) for n, a in arrays.items()}
            rows = numbered("index ", np.arange(s, e))
            keys = (
                pa.array(np.asarray(key_arr[s:e]))
                if key_arr is not None
                else pa.array([str(i) for i in range(s, e)], pa.string())
            )
            if key_arr is not None and keys.type == pa.binary():
                keys = keys.cast(pa.string())
            table = pa.table(cols)
            meta = _shape_meta({n: a[:1] if hasattr(a, "shape") else a for n, a in arrays.items()})
            if meta:
                table = table.replace_schema_metadata(
                    {b"dataops.shapes": json.dumps(meta).encode()}
                )
            seqs = np.arange(s, e, dtype=np.int64)
            yield _finish(table, src, rows, seqs, errors, key_values=keys)
    finally:
        if handle is not None:
            handle.close()
