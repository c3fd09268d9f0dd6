"""Text encodings of CSV and JSON sources: the one-line error naming the first undecodable byte,
UTF-16/32 text refused under a byte encoding (BOM and NUL checks), the codec to read with."""

from __future__ import annotations

import codecs
from pathlib import Path

from dataops.errors import DatasetError
from dataops.stages.sources.base import Source


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


def text_codec(encoding: str) -> str:
    """Python codec for reading: UTF-8 skips a byte-order mark."""
    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name == "utf-8" else name
