"""`LoadOptions`: every option of `dataops.load`, as one typed, validated value."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from dataops.errors import ConfigError

DEFAULT_DVC_PATH = "data/tfrecords"

Verify = Literal["quick", "size", "sha256", "none"]
VERIFY_MODES = ("quick", "size", "sha256", "none")


@dataclass(frozen=True)
class LoadOptions:
    """How to read a dataset. `dataops.load(..., **kwargs)` validates its keywords into this."""

    repo: str | os.PathLike[str] | None = field(
        default=None, metadata={"doc": "A DVC repository: `source` is then a git revision of it."}
    )
    path: str = field(
        default=DEFAULT_DVC_PATH, metadata={"doc": "The dataset directory inside `repo`."}
    )
    cache_dir: str | os.PathLike[str] | None = field(
        default=None, metadata={"doc": "Where revisions are materialized (default: user cache)."}
    )
    batch_size: int = field(default=32, metadata={"doc": "Examples per batch."})
    shuffle: bool = field(default=False, metadata={"doc": "Shuffle (deterministically per seed)."})
    seed: int | None = field(
        default=None, metadata={"doc": "Shuffle seed; None draws one, recorded in the state."}
    )
    shuffle_buffer: int = field(default=10_000, metadata={"doc": "Records permuted together."})
    interleave: int = field(default=8, metadata={"doc": "Shards read round-robin when shuffling."})
    repeat: int | None = field(default=1, metadata={"doc": "Epochs; None repeats forever."})
    drop_remainder: bool = field(
        default=False, metadata={"doc": "Drop each epoch's last, short batch."}
    )
    cache: bool = field(default=False, metadata={"doc": "Read the selected records into memory."})
    ragged: bool = field(default=True, metadata={"doc": "False: pad sequences with 0."})
    features: tuple[str, ...] | None = field(
        default=None, metadata={"doc": "The features to read (default: all)."}
    )
    supervised: tuple[str | tuple[str, ...], str] | None = field(
        default=None, metadata={"doc": "`(x, y)`: elements are tuples instead of dicts."}
    )
    num_parallel_calls: int | None = field(
        default=None, metadata={"doc": "Parallel calls of the parse/decode step."}
    )
    num_workers: int = field(
        default=1, metadata={"doc": "Training workers reading this split together (see below)."}
    )
    worker_index: int = field(default=0, metadata={"doc": "Which of them this one is, from 0."})
    input_context: Any = field(
        default=None,
        metadata={
            "doc": "A `tf.distribute.InputContext`: num_workers and worker_index from it "
            "(num_input_pipelines, input_pipeline_id)."
        },
    )
    verify: Verify = field(
        default="quick",
        metadata={
            "doc": "Checks when the loader is built: `quick` (sizes, counts, shard indexes, "
            "each shard's first and last 64 KiB), `size`, `sha256` (every byte) or `none`."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigError(f"batch_size must be an integer, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.shuffle_buffer < 1:
            raise ConfigError(f"shuffle_buffer must be at least 1, got {self.shuffle_buffer}")
        if self.interleave < 1:
            raise ConfigError(f"interleave must be at least 1, got {self.interleave}")
        if self.repeat is not None and self.repeat < 0:
            raise ConfigError(
                f"repeat must be None (forever) or a number of epochs >= 0, got {self.repeat}"
            )
        if self.verify not in VERIFY_MODES:
            raise ConfigError(
                f"verify must be one of {', '.join(repr(v) for v in VERIFY_MODES)}, got {self.verify!r}"
            )
        ctx = self.input_context
        if ctx is not None:
            n, i = int(ctx.num_input_pipelines), int(ctx.input_pipeline_id)
            if (self.num_workers, self.worker_index) not in ((1, 0), (n, i)):
                raise ConfigError(
                    f"input_context says worker {i} of {n}, but num_workers={self.num_workers}, "
                    f"worker_index={self.worker_index} were given too; give one or the other"
                )
            object.__setattr__(self, "num_workers", n)
            object.__setattr__(self, "worker_index", i)
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int):
            raise ConfigError(f"num_workers must be an integer, got {self.num_workers!r}")
        if self.num_workers < 1:
            raise ConfigError(f"num_workers must be at least 1, got {self.num_workers}")
        if not 0 <= self.worker_index < self.num_workers:
            raise ConfigError(
                f"worker_index must be in 0..{self.num_workers - 1} (num_workers={self.num_workers}), got {self.worker_index}"
            )
        if self.features is not None and not isinstance(self.features, tuple):
            object.__setattr__(self, "features", tuple(self.features))
        if self.supervised is not None:
            x, y = self.supervised
            object.__setattr__(self, "supervised", (x if isinstance(x, str) else tuple(x), y))

    @classmethod
    def of(cls, options: LoadOptions | None = None, **kwargs: Any) -> LoadOptions:
        """`options`, with `kwargs` (the keywords of `dataops.load`) applied on top; unknown keys are a ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(
                f"unknown option {unknown[0]!r} of dataops.load; the options are {sorted(known)}"
            )
        base = options if options is not None else cls()
        return dataclasses.replace(base, **kwargs) if kwargs else base
