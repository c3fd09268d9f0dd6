"""CSV sources: the header as Arrow reads it, the file streamed in chunks cut at line ends (memory
does not grow with the file), blank and malformed lines numbered exactly, byte ranges for
readers that each take one."""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.errors import DatasetError
from dataops.stages.sources.base import Batch, RowErrors, Source
from dataops.stages.sources.csvlines import (
    LineCursor,
    check_header_line,
    first_line_break,
    has_lone_cr,
    last_line_open,
)
from dataops.stages.sources.encoding import encoding_error
from dataops.stages.sources.rows import finish_batch


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


def read_csv(
    src: Source, batch_rows: int, errors: RowErrors, part: CsvRange | None = None
) -> Iterator[Batch]:
    header = _csv_header(src)
    if part is None:
        part = CsvRange(-1, None, 2 if src.params.header else 1, 0)
    key_index = header.index(src.key) if src.key in header else None
    cursor = LineCursor(part.line, part.seq)
    first = cursor.first
    bad = cursor.bad

    def on_invalid(row: Any, number: int) -> str:
        # An exception raised here would be swallowed by Arrow: remember it, stop the reader.
        msg = f"{src.label}: line {number}: expected {row.expected_columns} columns, got {row.actual_columns}"
        if errors.policy == "fail":
            # raised once the rows before it are checked (an empty key on an earlier line of
            # the chunk is the first error); until then the line is skipped like a bad one
            cursor.stop_at(number, msg, malformed=True)
            bad.append(number)
            return "skip"
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
        if cursor.fatal:
            cursor.raise_fatal(errors)
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
            check_header_line(src, rest[: rest.find(b"\n")] if b"\n" in rest else rest)
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
            begin = start or 0
            start = _next_line(f, begin)
            f.seek(begin)
            check_header_line(src, f.read((start or size) - begin).rstrip(b"\n"))
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
    src: Source, header: list[str], on_invalid: Any, cursor: LineCursor, part: CsvRange
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
        invalid: list[int] = []  # the line numbers of the malformed rows, as numbered here

        def counted(
            row: Any, handler: Any = handler, invalid: list[int] = invalid, base: int = base
        ) -> str:
            invalid.append(base + row.number - 1)
            return handler(row)

        # bytes only, before Arrow reads (and maybe fails on) the rows that follow
        first = None
        if last_line_open(chunk, src) or has_lone_cr(chunk):
            first = first_line_break(src, chunk, base)
        try:
            table = pcsv.read_csv(
                pa.py_buffer(chunk),
                read_options=read,
                parse_options=_csv_parse_options(src, counted),
                convert_options=convert,
            )
        except pa.ArrowInvalid:
            # a malformed row under `fail`: a line break in a record before it comes first
            stop = invalid[-1] + len(blanks) if invalid else None
            if first is None:
                first = first_line_break(src, chunk, base, stop)
            if first is not None and (stop is None or first.args[1] <= stop):
                raise DatasetError(first.args[0]) from None
            raise
        lines = newlines + (not chunk.endswith(b"\n"))
        if first is None and table.num_rows + len(invalid) + len(blanks) != lines:
            first = first_line_break(src, chunk, base)
            if first is None:
                raise DatasetError(
                    f"{src.label}: lines {base} to {base + lines - 1}: "
                    f"{table.num_rows + len(invalid)} records read from {lines - len(blanks)} "
                    "lines; each row must be one line (no line breaks inside values)"
                )
        if first is not None:  # raised once the rows before it are checked, in line order
            cursor.stop_at(first.args[1], first.args[0], malformed=False)
        yield from table.to_batches()


def _csv_batches(
    src: Source,
    header: list[str],
    batch_rows: int,
    errors: RowErrors,
    on_invalid: Any,
    cursor: LineCursor,
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
            if cursor.fatal:  # the rows before the first fatal line, then its error
                keep = int(np.searchsorted(cursor.lines, cursor.fatal[0][0]))
                if keep:
                    table = pa.Table.from_batches([piece.slice(0, keep)])
                    yield finish_batch(table, src, rows.slice(0, keep), seqs[:keep], errors)
                cursor.raise_fatal(errors)
            yield finish_batch(pa.Table.from_batches([piece]), src, rows, seqs, errors)
    if cursor.fatal:
        cursor.raise_fatal(errors)
