"""Reading a `dataops export --format snapshot` directory: one `tf.data` snapshot per split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataops.loading.splits import Segment
from dataops.metadata import DatasetMetadata


def snapshot_reader(directory: Path, metadata: DatasetMetadata, segments: list[Segment]) -> Any:
    """(split, start, count, ...) → those rows of a snapshot export's split."""
    import tensorflow as tf

    splits = list(dict.fromkeys(s.split for s in segments))
    loaded = None
    base: dict[str, int] = {}
    total = 0
    for name in splits:
        d = tf.data.Dataset.load(str(directory / name))
        loaded = d if loaded is None else loaded.concatenate(d)
        base[name] = total
        total += metadata.split(name).num_examples
    if loaded is None:  # an empty selection: any split gives the element structure
        first = metadata.splits[0].name
        loaded = tf.data.Dataset.load(str(directory / first)).take(0)
    keys = tf.constant(list(base) or [""])
    vals = tf.constant(list(base.values()) or [0], tf.int64)
    everything = loaded

    def read_snapshot(split: Any, a: Any, n: Any, m: Any, t: Any, lo: Any, hi: Any) -> Any:
        offset = tf.reduce_sum(tf.where(keys == split, vals, tf.zeros_like(vals)))
        return everything.skip(offset + a).take(n)

    return read_snapshot
