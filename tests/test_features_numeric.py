"""Numeric statistics: stable moments (Welford/Chan) that merge to the bits of one pass."""

from __future__ import annotations

import json
import pickle
from functools import reduce

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataops.config import IngestParams, NumericFeature, PreprocessParams
from dataops.features.base import Batch
from dataops.features.numeric import Moments, Numeric
from dataops.ingest import run_ingest
from dataops.preprocess import assign_splits, read_state, run_preprocess


def _fold(parts: list[np.ndarray]) -> Moments:
    return reduce(Moments.merge, (Moments.of(p) for p in parts), Moments())


def _cut(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return np.split(x, sorted({c % (len(x) + 1) for c in cuts}))


@pytest.mark.parametrize("offset,scale", [(1.7e9, 5.0), (0.0, 30.0), (-1e9, 2.0), (1e6, 1e-3)])
def test_large_offsets_keep_the_standard_deviation(offset, scale):
    x = offset + np.random.default_rng(1).normal(0, scale, 10_000)
    m = _fold(_cut(x, list(range(0, 10_000, 4096))))
    assert m.count == 10_000
    assert np.sqrt(m.variance) == pytest.approx(np.std(x), rel=1e-9)  # ddof=0, like np.std
    assert m.mean == pytest.approx(np.mean(x), rel=1e-15, abs=1e-12)


def test_one_part_is_numpy_to_the_bit():
    x = 1.7e9 + np.random.default_rng(2).normal(0, 5, 4096)
    m = Moments.of(x)
    assert (m.mean, m.variance) == (np.mean(x), np.var(x))


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_merged_partials_equal_one_pass_over_the_same_parts(values, cuts):
    x = np.array(values, dtype=np.float64)
    parts = _cut(x, cuts)
    one_pass = _fold(parts)  # what preprocess's loop computes over these batches
    # the same parts fitted elsewhere (as plain data) and merged later: the same bits
    shipped = [pickle.loads(pickle.dumps(Moments.of(p))) for p in parts]
    assert reduce(Moments.merge, shipped, Moments()) == one_pass
    assert Moments().merge(one_pass) == one_pass == one_pass.merge(Moments())
    assert one_pass.count == x.size
    assert one_pass.mean == pytest.approx(np.mean(x), rel=1e-9, abs=1e-3)
    assert one_pass.variance == pytest.approx(np.var(x), rel=1e-7, abs=1e-3)
    assert one_pass.m2 >= 0


def test_the_feature_fits_moments_of_its_train_rows():
    feat = Numeric(NumericFeature(kind="numeric", name="x"))
    values = [1.0, None, 3.0, 10.0, 4.0]
    batch = Batch(pa.table({"x": values}), lambda column, i: f"row {i}")
    use = np.array([True, True, True, False, True])
    part = feat.partial_fit(batch, use)
    assert part == Moments.of(np.array([1.0, 3.0, 4.0]))
    state = feat.finalize(feat.merge(feat.empty_partial(), part))
    assert state == {"count": 3, "mean": part.mean, "std": float(np.sqrt(part.variance))}


def test_preprocess_stores_the_moments_of_its_batches_bit_for_bit(tmp_path):
    """Through ingest and preprocess: a large-offset column's state is the merge of the
    per-batch moments of its train rows, and standardizing it gives mean 0 and std 1."""
    rng = np.random.default_rng(3)
    x = 1.7e9 + rng.normal(0, 5, 3000)
    lines = ["id,x"] + [f"{i},{float(v)!r}" for i, v in enumerate(x)]
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    ingest = IngestParams.model_validate(
        {"key": "id", "sources": [{"name": "big", "format": "csv", "path": "big.csv"}]}
    )
    run_ingest(ingest, tmp_path, tmp_path / "snap")
    ratios = {"train": 0.7, "test": 0.3}
    pre = PreprocessParams.model_validate(
        {
            "split": {"ratios": ratios},
            "features": [{"name": "x", "kind": "numeric", "standardize": True}],
            "batch_rows": 1000,
        }
    )
    run_preprocess(pre, tmp_path / "snap", tmp_path / "pre")
    state = read_state(tmp_path / "pre")["state"]["x"]

    train = assign_splits([str(i) for i in range(3000)], ratios, 0) == 0
    want = _fold([x[lo : lo + 1000][train[lo : lo + 1000]] for lo in range(0, 3000, 1000)])
    assert state == json.loads(
        json.dumps({"count": want.count, "mean": want.mean, "std": float(np.sqrt(want.variance))})
    )
    assert state["std"] == pytest.approx(np.std(x[train]), rel=1e-9)
    assert 4.8 < state["std"] < 5.2  # E[x²] − E[x]² gave 1.0 here
    z = pq.read_table(tmp_path / "pre" / "train.parquet").column("x").to_numpy()
    assert abs(float(z.mean())) < 1e-3 and abs(float(z.std()) - 1) < 1e-3
