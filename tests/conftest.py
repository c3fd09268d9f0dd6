"""Shared fixtures: tiny real datasets built once per session with the real stages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def repo_params(**overrides) -> dict:
    """The committed params.yaml as a dict, with top-level sections updated from `overrides`."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return data


def small_params_data(num_examples: int = 240, **overrides) -> dict:
    """params.yaml for a few hundred sample rows: expectations relaxed to what such a sample meets."""
    data = repo_params(sample={"num_examples": num_examples}, **overrides)
    data["validate"]["min_examples"] = {"train": 10, "validation": 1, "test": 1}
    data["validate"]["class_balance"] = {
        "feature": "label",
        "min_fraction": 0.01,
        "max_fraction": 0.7,
    }
    return data


def small_params(num_examples: int = 240, **overrides):
    from dataops.config import parse_params

    return parse_params(small_params_data(num_examples, **overrides))


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A project root holding the whole pipeline's outputs for 240 sample rows; returns the root.

    The dataset directory is `root / "data" / "tfrecords"`. Treat it as read-only.
    """
    from dataops.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("small")
    run_pipeline(small_params(), root)
    return root


@pytest.fixture(scope="session")
def small_tfrecords(small_dataset: Path) -> Path:
    return small_dataset / "data" / "tfrecords"


@pytest.fixture(scope="session")
def sharded(small_dataset: Path, tmp_path_factory) -> Path:
    """The small dataset re-serialized into 3 shards per split (so segments cross shard files)."""
    from dataops.serialize import run_serialize

    p = small_params()
    out = tmp_path_factory.mktemp("sharded") / "tfrecords"
    run_serialize(
        p.serialize.model_copy(update={"num_shards": 3}),
        p.dataset.name,
        small_dataset / "data" / "preprocessed",
        out,
    )
    return out


def run_cli(
    *args: str, cwd: Path | None = None, check: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `dataops ARGS` as a user would; returns the completed process (text mode)."""
    full_env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    return subprocess.run(
        [str(VENV_BIN / "dataops"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        env=full_env,
    )
