"""Split expressions (`"train[:10%]+validation"`) and the shard segments that hold their rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dataops.errors import ConfigError, DatasetError
from dataops.metadata import DatasetMetadata, ShardInfo


@dataclass(frozen=True)
class Segment:
    """Rows [start, start + count) of one shard (or of a snapshot's split)."""

    file: str
    split: str
    start: int
    count: int
    shard: ShardInfo | None = None  # what metadata.json says of the file (None in a snapshot)


_PART_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_.\-]+)\s*(?:\[\s*(?P<a>[^:\]]*?)\s*:\s*(?P<b>[^\]]*?)\s*\])?\s*$"
)


def _bound(text: str, n: int, expr: str) -> int | None:
    if text == "":
        return None
    try:
        if text.endswith("%"):
            pct = int(text[:-1])
            if not -100 <= pct <= 100:
                raise ValueError
            rows = (n * abs(pct) * 2 + 100) // 200  # nearest row, halves up
            return rows if pct >= 0 else n - rows
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"split {expr!r}: bad slice bound {text!r} (use an integer or an integer percent like 10%)"
        ) from None
    return value if value >= 0 else max(n + value, 0)


def parse_split(expr: str, meta: DatasetMetadata) -> list[tuple[str, int, int]]:
    """`"train[:10%]+validation"` → `[(split, first row, end row), ...]` (TFDS-like; percents round to the nearest row)."""
    parts = []
    for raw in expr.split("+"):
        m = _PART_RE.match(raw)
        if not m:
            raise ConfigError(
                f"split {expr!r}: cannot parse {raw!r} (examples: 'train', 'train[:10%]', 'train[100:200]', 'train+validation')"
            )
        name = m.group("name")
        try:
            split = meta.split(name)
        except DatasetError as err:
            raise ConfigError(str(err)) from None
        n = split.num_examples
        total = sum(sh.num_examples for sh in split.shards)
        if (split.shards and total != n) or n < 0:
            # checked here, before the count sizes the selection: a count of 0 (or < 0) would
            # otherwise select no row and read nothing, silently
            raise DatasetError(
                f"metadata.json: split '{name}' says {n} examples, its shards list {total}"
            )
        lo = _bound(m.group("a") or "", n, expr) if m.group("a") is not None else None
        hi = _bound(m.group("b") or "", n, expr) if m.group("b") is not None else None
        lo = 0 if lo is None else min(lo, n)
        hi = n if hi is None else min(hi, n)
        parts.append((name, lo, max(lo, hi)))
    return parts


def canonical_split(parts: list[tuple[str, int, int]], meta: DatasetMetadata) -> str:
    out = []
    for name, lo, hi in parts:
        out.append(name if (lo, hi) == (0, meta.split(name).num_examples) else f"{name}[{lo}:{hi}]")
    return "+".join(out)


def split_segments(
    parts: list[tuple[str, int, int]], meta: DatasetMetadata, directory: Path, kind: str
) -> list[Segment]:
    """The shard segments holding the rows of `parts`, from the per-shard counts (no file is read)."""
    segs: list[Segment] = []
    for name, lo, hi in parts:
        if hi <= lo:
            continue
        if kind == "snapshot":
            segs.append(Segment(str(directory / name), name, lo, hi - lo))
            continue
        base = 0
        for shard in meta.split(name).shards:
            a, b = max(lo, base), min(hi, base + shard.num_examples)
            if a < b:
                segs.append(Segment(str(directory / shard.file), name, a - base, b - a, shard))
            base += shard.num_examples
    return segs


@dataclass(frozen=True)
class Selection:
    """The rows a loader reads: the canonical split expression and its segments, in order."""

    split: str
    segments: list[Segment]

    @property
    def num_examples(self) -> int:
        return sum(s.count for s in self.segments)

    def shards(self) -> dict[str, ShardInfo]:
        """Each shard file read (full path, in first-read order) → its ShardInfo."""
        return {s.file: s.shard for s in self.segments if s.shard is not None}


def select(expr: str, meta: DatasetMetadata, directory: Path, kind: str) -> Selection:
    """Parse `expr` against `meta` into the segments to read."""
    parts = parse_split(expr, meta)
    return Selection(canonical_split(parts, meta), split_segments(parts, meta, directory, kind))
