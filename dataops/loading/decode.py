"""The last step of the pipeline: a batch of raw records (or snapshot values) → the element.

`finisher` is the one place where records are parsed and features decoded (images, padding
of sequences, the `(x, y)` tuple of `supervised`).
"""

from __future__ import annotations

from typing import Any

from dataops.metadata import FeatureInfo


def finisher(
    features: list[FeatureInfo],
    *,
    snapshot: bool,
    ragged: bool,
    supervised: tuple[Any, str] | None,
) -> Any:
    """A function: batch of serialized records (or, from a snapshot, of values) → element."""
    import tensorflow as tf

    from dataops.tfrecord.spec import decode_feature, dense_feature, feature_spec

    spec = {f.name: feature_spec(f) for f in features}

    def finish(values: dict[str, Any]) -> Any:
        out = {}
        for f in features:
            v = values[f.name]
            if not snapshot:
                v = decode_feature(f, v)
            if not ragged:
                v = dense_feature(f, v)
            out[f.name] = v
        if supervised is not None:
            x, y = supervised
            xv = out[x] if isinstance(x, str) else {k: out[k] for k in x}
            return xv, out[y]
        return out

    if snapshot:
        return lambda batch: finish({f.name: batch[f.name] for f in features})
    return lambda raw: finish(tf.io.parse_example(raw, spec))
