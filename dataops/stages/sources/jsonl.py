"""JSON Lines and JSON array sources: records streamed (one array element at most
`JSON_MAX_ELEMENT` characters), column types inferred over the whole source, then converted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.errors import DatasetError
from dataops.stages.sources.base import Batch, RowErrors, Source
from dataops.stages.sources.encoding import encoding_error, text_codec
from dataops.stages.sources.jsontypes import (
    JsonType,
    check_exact,
    kind_name,
    kind_of,
    parse_float,
)
from dataops.stages.sources.rows import finish_batch

JSON_MAX_ELEMENT = 64 << 20  # characters of one element of a `json` array file


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


_DECODER = json.JSONDecoder(parse_float=parse_float, object_pairs_hook=_unique_object)
_LENIENT = json.JSONDecoder(parse_float=parse_float)


def _json_records(src: Source, errors: RowErrors, counting: bool) -> Iterator[tuple[int, str, Any]]:
    """Every record as `(record index, label, object)`; malformed ones reported (and counted
    only when `counting`, i.e. on the pass that yields rows)."""
    enc = text_codec(src.params.encoding)
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


def infer_json_types(src: Source) -> tuple[dict[str, JsonType], bool]:
    """Pass 1: the type of every column, from the whole source (or `schema:`); and whether
    every value already has its column's type (no conflict, no declared type), so pass 2 may
    hand the records to Arrow as they are."""
    declared = src.params.schema_ or {}
    wanted = None
    if src.params.columns is not None:
        wanted = set(src.params.columns) | set(src.params.image_columns)
        if src.keyless_prefix is None:
            wanted.add(src.key)
    cols: dict[str, JsonType] = {}
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
                t = cols[k] = JsonType.of_declared(declared[k]) if k in declared else JsonType()
            if t.observe(v, label) is not None:
                clean = False
    for k, decl in declared.items():
        cols.setdefault(k, JsonType.of_declared(decl))
    for k, t in cols.items():
        check_exact(t, src, k)
    return cols, clean


def read_json(src: Source, batch_rows: int, errors: RowErrors) -> Iterator[Batch]:
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
        return finish_batch(table, src, rows, np.asarray(seqs, dtype=np.int64), errors)

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
                f"{src.label}: {label}: not a JSON object ({kind_name(kind_of(rec))})",
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
