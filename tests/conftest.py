"""Shared fixtures: tiny real datasets built once per session with the real stages.

Only fixtures live here; plain helpers are in tests/support (test modules never import conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.project import small_params

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A project root holding the whole pipeline's outputs for 240 sample rows; returns the root.

    The dataset directory is `root / "data" / "tfrecords"`. Treat it as read-only.
    """
    from dataops.stages.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("small")
    run_pipeline(small_params(), root)
    return root


@pytest.fixture(scope="session")
def small_tfrecords(small_dataset: Path) -> Path:
    return small_dataset / "data" / "tfrecords"


@pytest.fixture(scope="session")
def sharded(small_dataset: Path, tmp_path_factory) -> Path:
    """The small dataset re-serialized into 3 shards per split (so segments cross shard files)."""
    from dataops.stages.serialize import run_serialize

    p = small_params()
    out = tmp_path_factory.mktemp("sharded") / "tfrecords"
    run_serialize(
        p.serialize.model_copy(update={"num_shards": 3}),
        p.dataset.name,
        small_dataset / "data" / "preprocessed",
        out,
    )
    return out
