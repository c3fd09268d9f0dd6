"""The iterator state (`LoaderState`) and its pure arithmetic: epochs, positions, batch counts.

The order of a loaded dataset is a pure function of (fingerprint, split, seed, epoch,
order options), so the state of an iterator is five numbers and a few names — a few
hundred bytes whatever the shuffle buffer — and where it stands after N batches is
arithmetic (`Geometry.advance`), with no data read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataops.errors import DatasetError

STATE_VERSION = 1


class OrderOptions(BaseModel):
    """The loader options that decide the order and grouping of the stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(
        description="Examples per global batch: the batch size times the number of workers reading together."
    )
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


@dataclass(frozen=True)
class Geometry:
    """How a stream of `num_examples` per epoch is cut into batches and epochs.

    `batch_size` is the global batch: with `num_workers` > 1 each worker's batch k is its part
    of global batch k — the positions of it congruent to `worker_index` modulo `num_workers`
    — and every worker's state is the same global position.
    """

    num_examples: int
    batch_size: int
    drop_remainder: bool
    repeat: int | None
    split: str = ""
    num_workers: int = 1
    worker_index: int = 0

    @property
    def epoch_size(self) -> int:
        """Examples delivered per full epoch by all workers (fewer with drop_remainder)."""
        n = self.num_examples
        return (n // self.batch_size) * self.batch_size if self.drop_remainder else n

    def epoch_end(self, position: int) -> int:
        """Where the epoch that is at `position` ends (it may start mid-batch after a restore)."""
        if not self.drop_remainder:
            return self.num_examples
        left = self.num_examples - position
        return position + (left // self.batch_size) * self.batch_size

    def _has_share(self, position: int, end: int) -> bool:
        """Whether positions [position, end) hold one of this worker's."""
        return (self.worker_index - position) % self.num_workers < end - position

    def batches_between(self, position: int, end: int) -> int:
        """This worker's batches from `position` to `end` (one per global batch it has a part of)."""
        if end <= position:
            return 0
        full, rem = divmod(end - position, self.batch_size)
        return full + (1 if rem and self._has_share(end - rem, end) else 0)

    @property
    def batches_per_epoch(self) -> int:
        return self.batches_between(0, self.epoch_end(0))

    def normalize(self, state: LoaderState) -> LoaderState:
        """Move a position at the end of an epoch (or of this worker's part of it) to the start of the next."""
        if state.position < 0 or state.epoch < 0:
            raise DatasetError(
                f"iterator state has a negative epoch or position ({state.epoch}, {state.position})"
            )
        if state.position > self.num_examples:
            raise DatasetError(
                f"iterator state position {state.position} is past the {self.num_examples} examples of split {self.split!r}"
            )
        end = self.epoch_end(state.position)
        if state.position > 0 and not self._has_share(state.position, end):
            return state.model_copy(update={"epoch": state.epoch + 1, "position": 0})
        return state

    def advance(self, state: LoaderState, num_batches: int) -> LoaderState:
        """The state after `num_batches` more batches (the stream is deterministic)."""
        epoch, pos = state.epoch, state.position
        for _ in range(num_batches):
            end = self.epoch_end(pos)
            if not self._has_share(pos, end):
                if self.batches_per_epoch == 0:
                    break
                epoch, pos = epoch + 1, 0
                end = self.epoch_end(0)
            pos = min(pos + self.batch_size, end)
            if not self._has_share(pos, end):
                epoch, pos = epoch + 1, 0
        return state.model_copy(update={"epoch": epoch, "position": pos})

    def num_batches(self, state: LoaderState) -> int | None:
        """Batches a stream from `state` yields; None when it repeats forever."""
        if self.repeat is None:
            return None
        st = self.normalize(state)
        if st.epoch >= self.repeat:
            return 0
        first = self.batches_between(st.position, self.epoch_end(st.position))
        return first + self.batches_per_epoch * (self.repeat - st.epoch - 1)
