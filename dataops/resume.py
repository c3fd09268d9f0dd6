"""Exact resumption: a small iterator state, and an iterator that saves and restores it.

The order of a loaded dataset is a pure function of (fingerprint, split, seed, epoch,
order options), so the state of an iterator is five numbers and a few names — a few
hundred bytes whatever the shuffle buffer. Restoring rebuilds the pipeline and skips the
consumed raw records of the current epoch before they are parsed. `DatasetIterator` is a
TensorFlow trackable: `tf.train.Checkpoint(data=iterator)` saves and restores it.
TensorFlow is imported only when an iterator is created.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataops.errors import DatasetError

if TYPE_CHECKING:
    from dataops.loader import Loader

STATE_VERSION = 1


class OrderOptions(BaseModel):
    """The loader options that decide the order and grouping of the stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(description="Examples per batch.")
    drop_remainder: bool = Field(description="Whether each epoch's last, short batch is dropped.")
    shuffle: bool = Field(description="Whether the order is shuffled.")
    shuffle_buffer: int = Field(description="Records permuted together (one block) when shuffling.")
    interleave: int = Field(description="Shards read round-robin at a time when shuffling.")


class LoaderState(BaseModel):
    """Where an iterator is: enough to continue with exactly the elements not yet seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(STATE_VERSION, description="Version of this state format.")
    dataset: str = Field(description="Dataset name (informative).")
    fingerprint: str = Field(
        description="`fingerprint` of the dataset's metadata.json; restoring checks it."
    )
    split: str = Field(
        description="The canonical split expression, e.g. `train[0:100]+validation`."
    )
    seed: int = Field(description="Shuffle seed (0 when not shuffling).")
    epoch: int = Field(description="Current epoch, from 0.")
    position: int = Field(description="Examples of the current epoch already delivered.")
    order: OrderOptions

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> LoaderState:
        return parse_state(json.loads(text))


def parse_state(data: Any) -> LoaderState:
    """A `LoaderState` from a state object, a dict or JSON text; DatasetError when malformed."""
    if isinstance(data, LoaderState):
        return data
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise DatasetError(f"iterator state is not valid JSON: {err}") from None
    try:
        return LoaderState.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise DatasetError(
            f"invalid iterator state at '{'.'.join(str(p) for p in first['loc'])}': {first['msg']}"
        ) from None


def check_compatible(state: LoaderState, expected: LoaderState) -> None:
    """Raise DatasetError when `state` was saved for another dataset, split or order."""
    if state.version != STATE_VERSION:
        raise DatasetError(
            f"iterator state version {state.version} is not supported (this dataops reads version {STATE_VERSION})"
        )
    if state.fingerprint != expected.fingerprint:
        raise DatasetError(
            f"iterator state is for dataset fingerprint {state.fingerprint} ({state.dataset!r}), "
            f"but this dataset has fingerprint {expected.fingerprint} ({expected.dataset!r})"
        )
    if state.split != expected.split:
        raise DatasetError(
            f"iterator state is for split {state.split!r}, this loader reads {expected.split!r}"
        )
    saved, now = state.order.model_dump(), expected.order.model_dump()
    for key in saved:
        if saved[key] != now[key]:
            raise DatasetError(
                f"iterator state was saved with {key}={saved[key]!r}, this loader has {key}={now[key]!r}"
            )
    if state.order.shuffle and state.seed != expected.seed:
        raise DatasetError(
            f"iterator state was saved with seed={state.seed}, this loader has seed={expected.seed}"
        )


def _iterator_base() -> type:
    import tensorflow as tf

    return tf.__internal__.tracking.Trackable  # type: ignore[no-any-return]


def make_iterator(loader: Loader, state: LoaderState | None = None) -> Any:
    """A `DatasetIterator` over `loader`, from `state` or from the start."""
    return _iterator_class()(loader, state)


_CLASS: list[type] = []


def _iterator_class() -> type:
    if _CLASS:
        return _CLASS[0]
    import tensorflow as tf

    class DatasetIterator(_iterator_base()):  # type: ignore[misc]
        """Iterates a loader's batches and knows its exact position.

        `state()` → a `LoaderState`; `restore(state)` continues from it. In a
        `tf.train.Checkpoint` it is saved as one small string tensor (the state's JSON).
        """

        def __init__(self, loader: Loader, state: LoaderState | None = None) -> None:
            self._loader = loader
            self._start(state if state is not None else loader.initial_state())

        def _start(self, state: LoaderState) -> None:
            state = self._loader.normalize_state(state)
            self._state = state
            self._iter = iter(self._loader.dataset(state=state))

        def __iter__(self) -> DatasetIterator:
            return self

        def __next__(self) -> Any:
            try:
                batch = next(self._iter)
            except (
                tf.errors.DataLossError,
                tf.errors.InvalidArgumentError,
                tf.errors.UnknownError,  # raised by the indexed reader (a Python function)
            ) as err:
                raise self._loader.diagnose(err) from None
            self._state = self._loader.advance(self._state, 1)
            return batch

        def get_next(self) -> Any:
            return self.__next__()

        def state(self) -> LoaderState:
            """The position after the last batch returned."""
            return self._state

        def restore(self, state: LoaderState | dict[str, Any] | str) -> None:
            """Continue from `state` (saved by `state()` on an equal loader)."""
            parsed = parse_state(state)
            self._loader._adopt_seed(parsed)
            check_compatible(parsed, self._loader.initial_state())
            self._start(parsed)

        @property
        def element_spec(self) -> Any:
            return self._loader.element_spec

        # tf.train.Checkpoint support: one scalar string tensor holding the state's JSON.
        def _serialize_to_tensors(self) -> dict[str, Any]:
            return {"state": tf.constant(self._state.to_json())}

        def _restore_from_tensors(self, restored_tensors: dict[str, Any]) -> Any:
            value = restored_tensors["state"]
            self.restore(value.numpy().decode("utf-8"))
            return tf.no_op()

    _CLASS.append(DatasetIterator)
    return DatasetIterator
