"""`DatasetIterator`: iterates a loader's batches and owns its exact position.

`state()` → a `LoaderState`; `restore(state)` continues from it. It is a TensorFlow
trackable: `tf.train.Checkpoint(data=iterator)` saves it as one small string tensor (the
state's JSON). TensorFlow is imported only when an iterator is created.
"""

from __future__ import annotations

from typing import Any, Protocol

from dataops.errors import DatasetError
from dataops.loading.state import LoaderState


class _Loader(Protocol):
    def initial_state(self) -> LoaderState: ...
    def adopt(self, state: LoaderState | dict[str, Any] | str) -> LoaderState: ...
    def normalize_state(self, state: LoaderState) -> LoaderState: ...
    def advance(self, state: LoaderState, num_batches: int) -> LoaderState: ...
    def dataset(self, state: LoaderState | dict[str, Any] | str | None = None) -> Any: ...
    def diagnose(self, err: Exception) -> DatasetError: ...
    @property
    def element_spec(self) -> Any: ...


def make_iterator(loader: _Loader, state: LoaderState | None = None) -> Any:
    """A `DatasetIterator` over `loader`, from `state` (already adopted) or from the start."""
    return _iterator_class()(loader, state)


_CLASS: list[type] = []


def _iterator_class() -> type:
    if _CLASS:
        return _CLASS[0]
    import tensorflow as tf

    class DatasetIterator(tf.__internal__.tracking.Trackable):  # type: ignore[misc,name-defined]
        """Iterates a loader's batches and knows its exact position."""

        def __init__(self, loader: _Loader, state: LoaderState | None = None) -> None:
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
                tf.errors.DataLossError,  # TFRecordDataset: a CRC or framing error
                tf.errors.InvalidArgumentError,  # parse_example
                tf.errors.UnknownError,  # the indexed reader (a Python function)
                tf.errors.FailedPreconditionError,  # a shard with fewer/more records than promised
                tf.errors.NotFoundError,  # a shard removed while reading
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
            self._start(self._loader.adopt(state))

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
