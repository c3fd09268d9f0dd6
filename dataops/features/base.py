"""The interface every feature kind implements, and the batch of rows it reads.

A feature (one entry of `preprocess.features` in `params.yaml`) owns everything preprocess
does with its column: the `FeatureInfo`s it adds to `metadata.json`, reading and checking
the column from Arrow, fitting its state on train rows, and transforming a batch.

Fitting is *partial fit on a batch → merge of partials → finalize*. `partial_fit` returns a
value that describes one batch's train rows, `merge` combines two such values, and
`finalize` turns the merged value into the JSON state stored in `state.json`. The same steps
serve preprocess's in-process loop and a fit over partitions merged later. A driver must give
each `Batch` its `start` (its first row's snapshot row number); then partials of disjoint row
sets merged in any order or grouping finalize to the same state, to the bit, whatever the
batch sizes (every kind here: counters add up, numeric moments go by fixed row blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import pyarrow as pa

from dataops.errors import ConfigError, DatasetError
from dataops.metadata import FeatureInfo

ModelT = TypeVar("ModelT", bound=Any)
PartialT = TypeVar("PartialT")
T = TypeVar("T")

State = dict[str, Any]
"""The fitted state of one feature as stored in `state.json` (JSON data)."""


class BadRows:
    """Per-batch bad-row mask with the first (reason, message) of each bad row."""

    def __init__(self, n: int) -> None:
        self.mask = np.zeros(n, dtype=bool)
        self.reasons: dict[int, tuple[str, str]] = {}

    def add(self, i: int, reason: str, message: str) -> None:
        if not self.mask[i]:
            self.mask[i] = True
            self.reasons[i] = (reason, message)


class Batch:
    """One batch of snapshot rows: the table, its bad rows, and how to name a row in messages.

    `locate(column, row)` says where a row of `column` came from, e.g.
    `data/sample/a.csv: line 6 (id='5')`; the driver supplies it (it knows the ingest manifest).
    `start` is the snapshot row number of the batch's first row (row `i` of the batch is
    snapshot row `start + i`): a partial fit that must not depend on how the rows were cut
    into batches (numeric moments) places its rows by it.
    """

    def __init__(self, table: pa.Table, locate: Callable[[str, int], str], start: int = 0) -> None:
        self.table = table
        self.locate = locate
        self.start = start
        self.bad = BadRows(table.num_rows)
        self._memo: dict[Any, Any] = {}

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def memo(self, key: Any, make: Callable[[], T]) -> T:
        """`make()` once per batch under `key`: a reading several steps share (pass 1 checks a
        batch, then fits on the same `Batch`), made and its bad rows marked by the first call."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]  # type: ignore[no-any-return]

    def fail(self, i: int, column: str, reason: str, text: str) -> None:
        """Mark row `i` bad (its first reason is kept) with a message naming file, row and column."""
        if not self.bad.mask[i]:
            self.bad.add(i, reason, f"{self.locate(column, i)}: column '{column}': {text}")

    def column(self, model: Any) -> tuple[str, pa.ChunkedArray]:
        """The input column of a feature model, and its name."""
        name = model.column or model.name
        if name not in self.table.column_names:
            have = [c for c in self.table.column_names if not c.startswith("__")]
            raise ConfigError(
                f"params.yaml: key 'preprocess.features' ({model.name}): column '{name}' is not in the snapshot (columns: {have})"
            )
        return name, self.table.column(name)

    def strings(self, model: Any) -> tuple[str, list[str | None]]:
        """The input column as Python strings (None where missing); integers are accepted."""
        name, col = self._string_column(model)
        if pa.types.is_integer(col.type):
            return name, [None if v is None else str(v) for v in col.to_pylist()]
        return name, col.to_pylist()

    def text_array(self, model: Any) -> tuple[str, pa.Array | None]:
        """The input column as one Arrow array when it is stored as text, for vectorized
        reads; None when it holds integers (read those with `strings`)."""
        name, col = self._string_column(model)
        if pa.types.is_integer(col.type):
            return name, None
        return name, col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col

    def _string_column(self, model: Any) -> tuple[str, pa.ChunkedArray]:
        name, col = self.column(model)
        if not (
            pa.types.is_string(col.type)
            or pa.types.is_large_string(col.type)
            or pa.types.is_integer(col.type)
        ):
            raise DatasetError(
                f"column '{name}' has type {col.type}; feature '{model.name}' ({model.kind}) needs strings"
            )
        return name, col


class Feature(Generic[ModelT, PartialT]):
    """One feature kind. Subclasses set `model_type` and override what their kind does.

    The defaults describe a feature with nothing to fit: `partial_fit` returns None and
    `finalize` gives no state.
    """

    model_type: ClassVar[type]

    def __init__(self, model: ModelT) -> None:
        self.model = model

    @property
    def name(self) -> str:
        return str(self.model.name)

    # --- metadata ---------------------------------------------------------------------------

    def infos(self, state: State | None) -> list[FeatureInfo]:
        """The stored features this feature writes, given its fitted state."""
        raise NotImplementedError

    # --- pass 1: checking and fitting -------------------------------------------------------

    def check(self, batch: Batch) -> None:
        """Mark the rows whose value does not parse (without decoding images: pass 1)."""

    def empty_partial(self) -> PartialT:
        """The partial state of no rows: `merge(empty_partial(), p) == p`."""
        return None  # type: ignore[return-value]

    def partial_fit(self, batch: Batch, use: np.ndarray) -> PartialT:
        """The partial state of the rows of `batch` selected by the boolean mask `use`."""
        return None  # type: ignore[return-value]

    def merge(self, a: PartialT, b: PartialT) -> PartialT:
        """Two partial states as one; may reuse `a` (callers keep only the result)."""
        return a

    def finalize(self, partial: PartialT) -> State | None:
        """The state stored in `state.json` (None: this feature has none)."""
        return None

    # --- pass 2: transforming ---------------------------------------------------------------

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        """The output columns of `batch` (marking bad rows), keyed by stored feature name."""
        raise NotImplementedError

    def transformer(self, state: State | None) -> Transform:
        """This feature bound to its state for one pass over the rows to write."""
        return Transform(self, state)

    # --- serving ----------------------------------------------------------------------------

    @property
    def source_column(self) -> str:
        """The raw input column this feature reads (its `column`, else its name)."""
        return str(self.model.column or self.model.name)

    def serving_spec(self) -> Any:
        """The `tf.TensorSpec` (or `tf.RaggedTensorSpec`) of a batch of this feature's raw
        input column at serving time, e.g. `tf.TensorSpec([None], tf.string)`."""
        raise NotImplementedError

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        """TensorFlow ops from a batch of the raw column (`serving_spec`) to the stored
        features it becomes, keyed by stored feature name, equal to what `transform` writes
        (see `dataops.tools.serving` for where they are exact). A lookup table it uses must be a
        variable the returned function closes over: `dataops.tools.serving` finds and saves it there."""
        raise NotImplementedError


class Transform:
    """A feature bound to its fitted state for one writing pass (preprocess pass 2).

    A kind whose metadata depends on the rows written (an image's size) keeps that here.
    """

    def __init__(self, feature: Feature[Any, Any], state: State | None) -> None:
        self.feature = feature
        self.state = state

    def __call__(self, batch: Batch) -> dict[str, pa.Array]:
        return self.feature.transform(batch, self.state)

    def infos(self) -> list[FeatureInfo]:
        return self.feature.infos(self.state)

    # --- what one pass carries from batch to batch, for drivers that split the pass ---------

    @property
    def settled(self) -> bool:
        """True once what this transform carries between batches no longer changes how it
        transforms a batch; a copy made then transforms any batch as the whole pass would."""
        return True

    def merge(self, other: Transform) -> None:
        """Take in what a copy of this transform saw on later batches (for `infos`)."""
