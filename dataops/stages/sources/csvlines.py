"""CSV rows are lines: the checks that a record ends with its line (no quoted line break, no
lone carriage return), and the cursor that gives each row Arrow returns its line number and
record index, skipping blank and bad lines."""

from __future__ import annotations

import bisect

import numpy as np
import pyarrow as pa

from dataops.errors import DatasetError
from dataops.stages.sources.base import RowErrors, Source
from dataops.stages.sources.rows import numbered


def has_lone_cr(chunk: bytes) -> bool:
    """Whether a carriage return is not followed by a newline (inside quotes, or a line end
    that the line count would not see); one at the very end of the file is a line end."""
    n = chunk.count(b"\r")
    return n > 0 and n != chunk.count(b"\r\n") + chunk.endswith(b"\r")


def line_break_in_record(line: bytes, src: Source) -> str | None:
    """Why the record on this line (without its `\\n`) does not end with the line, as Arrow
    reads it: "open" when a quoted value is still open at its end, "cr" when a carriage return
    outside quotes (a lone CR) ends a record inside it; None when the line is one record."""
    if line.endswith(b"\r"):
        line = line[:-1]
    d = src.params.delimiter.encode()
    q = src.params.quote_char.encode() if src.params.quote_char else None
    i, n = 0, len(line)
    while True:  # at the start of a field
        plain = i
        if q is not None and line[i : i + 1] == q:
            j = i + 1
            while True:
                k = line.find(q, j)
                if k < 0:
                    return "cr" if b"\r" in line[:i] else "open"
                if line[k + 1 : k + 2] != q:
                    break
                j = k + 2
            plain = k + 1
        nxt = line.find(d, plain)
        end = n if nxt < 0 else nxt
        if b"\r" in line[plain:end]:
            return "cr"
        if nxt < 0:
            return None
        i = nxt + 1


def last_line_open(chunk: bytes, src: Source) -> bool:
    """Whether the chunk's last line ends inside a quoted value (the record would go on in the
    next chunk or range: cut there, it would be read as other rows)."""
    if src.params.quote_char is None or src.params.quote_char.encode() not in chunk:
        return False
    body = chunk[:-1] if chunk.endswith(b"\n") else chunk
    return line_break_in_record(body[body.rfind(b"\n") + 1 :], src) == "open"


def first_line_break(
    src: Source, chunk: bytes, base: int, stop: int | None = None
) -> Exception | None:
    """The first line of the chunk (numbered from `base`, up to line `stop`) whose record does
    not end with it, as an exception whose args are (message, line number): a quoted value
    holding a line break, or a lone carriage return ending a row inside the line. The streamed
    reader cuts the file at `\\n` and numbers lines by them, so either would merge, invent or
    shift rows silently."""
    q = src.params.quote_char.encode() if src.params.quote_char else b"\r"
    for number, line in enumerate(chunk.split(b"\n"), start=base):
        if stop is not None and number > stop:
            return None
        if b"\r" in line or q in line:
            why = line_break_in_record(line, src)
            if why is not None:
                return Exception(str(line_error(src, number, why)), number)
    return None


def line_error(src: Source, number: int, why: str) -> DatasetError:
    if why == "open":
        return DatasetError(
            f"{src.label}: line {number}: a quoted value goes on past the end of the line; "
            "values holding line breaks are not supported (replace them, e.g. by \\n)"
        )
    return DatasetError(
        f"{src.label}: line {number}: a carriage return not followed by a newline ends a "
        "row inside the line; only \\n and \\r\\n line ends are supported"
    )


def check_header_line(src: Source, line: bytes) -> None:
    """The header is read by Arrow (which also ends a line at a lone CR and reads quoted line
    breaks) but skipped by its first `\\n`: they must agree, or data rows would be dropped."""
    why = line_break_in_record(line, src)
    if why is not None:
        raise line_error(src, 1, why)


class LineCursor:
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
        # the first line that stops the read: (line, message, malformed under `fail`)
        self.fatal: list[tuple[int, str, bool]] = []
        self.lines = np.zeros(0, np.int64)  # the line numbers of the rows last taken
        self.blank_dropped = 0

    def stop_at(self, line: int, message: str, malformed: bool) -> None:
        if not self.fatal or line < self.fatal[0][0]:
            self.fatal[:] = [(line, message, malformed)]

    def raise_fatal(self, errors: RowErrors) -> None:
        _, message, malformed = self.fatal[0]
        if malformed:
            errors.bad("malformed_row", message)  # raises: only under `fail`
        raise DatasetError(message)

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
        self.lines = lines
        return numbered("line ", lines), seqs
