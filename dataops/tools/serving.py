"""Preprocessing for serving: the fitted preprocessing of a dataset as a TensorFlow SavedModel.

`export_preprocessor(dataset_dir, out)` writes a SavedModel whose `serve` function maps a
batch of raw source columns (strings, numbers, encoded image bytes, lists) to the stored
features, with the state fitted on the train split (`metadata.json`'s `preprocessing`). Every
feature kind builds its own part (`serving_spec` / `serving_fn` in `dataops.features`); this
module only assembles them.

Why a SavedModel and not a Keras `.keras` file: a `.keras` file stores layer *classes* by
name, so loading it needs this package's layers registered (or `safe_mode=False` for Lambda
layers); a SavedModel stores the graph, and `tf.saved_model.load(path)` needs only
TensorFlow. Every op is a core TensorFlow op (no `tf.py_function`), so no Python code of
ours runs at serving time. Call the loaded object's `serve` in a `tf.data` map or a
`tf.function` before the model. (Keras's `TFSMLayer` casts float inputs to float32, which the
float64 numeric inputs refuse: they are float64 so that imputation and standardization are
the pipeline's own float64 arithmetic, bit for bit.)

Where the outputs equal the stored features: bit for bit for numeric (the same float64
operations, in the same order), categorical, key, sequence, tensor and image features (see
`dataops.imaging`), and for text after normalization with token ids, except that core
TensorFlow has no Unicode normalization op: the text is taken as already NFKC/NFC-normalized
(`dataops.features.text.tf_normalize_text`). Serving never drops a row: an unknown category
gets the out-of-vocabulary id, a missing float gets the imputed value, and an image the
pipeline refuses fails the batch with the same reason (InvalidArgumentError).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.errors import DatasetError
from dataops.fsutil import atomic_dir
from dataops.metadata import read_metadata


@dataclass(frozen=True)
class ExportedPreprocessor:
    """Where the SavedModel went, its raw inputs (column names) and stored outputs."""

    out: Path
    inputs: list[str]
    outputs: list[str]


def serving_features(dataset_dir: str | Path) -> tuple[list[Any], dict[str, Any]]:
    """The feature objects a dataset was preprocessed with, and their fitted state."""
    from pydantic import TypeAdapter, ValidationError

    from dataops.config import Feature
    from dataops.features.registry import feature_for

    meta = read_metadata(dataset_dir)
    prep = meta.preprocessing or {}
    entries = prep.get("params", {}).get("preprocess", {}).get("features")
    if not entries:
        raise DatasetError(
            f"{Path(dataset_dir) / 'metadata.json'}: no 'preprocessing.params.preprocess.features' to export"
        )
    try:
        models = TypeAdapter(list[Feature]).validate_python(entries)
    except ValidationError as err:
        first = err.errors()[0]
        raise DatasetError(
            f"{Path(dataset_dir) / 'metadata.json'}: preprocessing.params.preprocess.features: {first['msg']}"
        ) from None
    return [feature_for(m) for m in models], dict(prep.get("state") or {})


def build_preprocessor(dataset_dir: str | Path) -> Any:
    """A `tf.Module` whose `serve(inputs)` maps a dict of raw columns to the stored features."""
    import tensorflow as tf

    features, state = serving_features(dataset_dir)
    specs = {f.source_column: f.serving_spec() for f in features}
    fns = [(f.source_column, f.serving_fn(state.get(f.name))) for f in features]

    class Preprocessor(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="dataops_preprocessor")
            # Tables created in `serving_fn` are tracked through the closures' module.
            self._tables = [t for _, fn in fns for t in _tables_of(fn)]

        @tf.function(input_signature=[specs], autograph=False)
        def serve(self, inputs: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for column, fn in fns:
                out.update(fn(inputs[column]))
            return out

    return Preprocessor()


def _tables_of(fn: Any) -> list[Any]:
    """The lookup tables a serving function closes over (they must be tracked to be saved)."""
    import tensorflow as tf

    cells = getattr(fn, "__closure__", None) or ()
    return [
        c.cell_contents
        for c in cells
        if isinstance(c.cell_contents, tf.lookup.StaticHashTable)  # not a feature kind
    ]


def export_preprocessor(dataset_dir: str | Path, out: str | Path) -> ExportedPreprocessor:
    """Write the dataset's preprocessing as a SavedModel directory at `out` (atomically)."""
    import tensorflow as tf

    module = build_preprocessor(dataset_dir)
    fn = module.serve.get_concrete_function()
    out = Path(out)
    with atomic_dir(out) as tmp:
        tf.saved_model.save(module, str(tmp))
    return ExportedPreprocessor(
        out=out,
        inputs=sorted(fn.structured_input_signature[0][0]),
        outputs=sorted(fn.structured_outputs),
    )


def load_preprocessor(path: str | Path) -> Any:
    """The `serve` function of an exported preprocessor (needs only TensorFlow)."""
    import tensorflow as tf

    return tf.saved_model.load(str(path)).serve
