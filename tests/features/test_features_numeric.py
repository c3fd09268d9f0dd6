"""Numeric statistics: stable moments (two-pass per block, Chan's merge in block order) whose
bits depend on the fitted rows only, never on how they were cut into batches or merged."""

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
from dataops.features.numeric import BLOCK_ROWS, BlockMoments, Moments, Numeric
from dataops.stages.ingest import run_ingest
from dataops.stages.preprocess import read_state, run_preprocess
from dataops.stages.split_assign import assign_splits


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


def _blocks_reference(x: np.ndarray, fitted: np.ndarray, block_rows: int) -> Moments:
    """The definition: two-pass moments of each aligned block's fitted values, folded in order."""
    parts = [
        x[lo : lo + block_rows][fitted[lo : lo + block_rows]] for lo in range(0, len(x), block_rows)
    ]
    return _fold(parts)


def _partial(x, fitted, lo, hi, block_rows):
    rows = lo + np.flatnonzero(fitted[lo:hi])
    return BlockMoments.of(lo, hi - lo, rows, x[rows], block_rows)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(finite, st.booleans()), min_size=0, max_size=200),
    st.integers(1, 16),
    st.lists(st.integers(0, 200), max_size=10),
    st.randoms(use_true_random=False),
)
def test_block_moments_do_not_depend_on_the_cuts_nor_the_merge_order(rows, block_rows, cuts, rnd):
    """Any batches, merged in any order and grouping (a Beam combiner's freedom), give the bits
    of one pass; and one pass is the block-by-block definition."""
    x = np.array([v for v, _ in rows], dtype=np.float64)
    fitted = np.array([u for _, u in rows], dtype=bool)
    n = len(x)
    whole = _partial(x, fitted, 0, n, block_rows)
    assert whole.total() == _blocks_reference(x, fitted, block_rows)
    bounds = [0, *sorted({c % (n + 1) for c in cuts}), n]
    parts = [
        _partial(x, fitted, lo, hi, block_rows) for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    shipped = [pickle.loads(pickle.dumps(p)) for p in parts]  # plain data, as across workers
    in_order = reduce(BlockMoments.merge, shipped, BlockMoments(block_rows))
    assert in_order == whole and in_order.total() == whole.total()
    while len(shipped) > 1:  # random pairs, in random order: a tree of any shape
        a = shipped.pop(rnd.randrange(len(shipped)))
        b = shipped.pop(rnd.randrange(len(shipped)))
        shipped.append(a.merge(b))
    assert shipped[0].total() == whole.total()
    assert BlockMoments(block_rows).merge(whole) == whole == whole.merge(BlockMoments(block_rows))
    # built in row order, a partial holds one folded prefix and at most one block of values
    assert not in_order.done and len(in_order.pending) <= 1
    assert all(p.index.size < block_rows for p in in_order.pending.values())


def test_block_moments_keep_the_standard_deviation_of_a_large_offset():
    x = 1.7e9 + np.random.default_rng(4).normal(0, 5, 20_000)
    m = BlockMoments.of(0, x.size, np.arange(x.size), x).total()
    assert m.count == 20_000
    assert np.sqrt(m.variance) == pytest.approx(np.std(x), rel=1e-9)
    assert 4.9 < np.sqrt(m.variance) < 5.1


def test_merging_overlapping_partials_is_refused():
    x = np.arange(10.0)
    a = BlockMoments.of(0, 10, np.arange(10), x, block_rows=4)
    with pytest.raises(ValueError, match="overlap"):
        a.merge(a)
    b = BlockMoments.of(5, 5, np.arange(5, 10), x[5:], block_rows=4)
    with pytest.raises(ValueError, match="block 1"):
        b.merge(BlockMoments.of(4, 2, np.arange(4, 6), x[4:6], block_rows=4))
    with pytest.raises(ValueError, match="block sizes differ: 4 and 8"):
        b.merge(BlockMoments(8))
    with pytest.raises(ValueError, match=r"outside rows \[5, 10\)"):
        BlockMoments.of(5, 5, np.arange(4, 9), x[4:9], block_rows=4)


def test_the_feature_fits_moments_of_its_train_rows():
    feat = Numeric(NumericFeature(kind="numeric", name="x"))
    values = [1.0, None, 3.0, 10.0, 4.0]
    use = np.array([True, True, True, False, True])
    whole = feat.partial_fit(Batch(pa.table({"x": values}), lambda column, i: f"row {i}"), use)
    assert whole.total() == Moments.of(np.array([1.0, 3.0, 4.0]))
    state = feat.finalize(feat.merge(feat.empty_partial(), whole))
    m = whole.total()
    assert state == {"count": 3, "mean": m.mean, "std": float(np.sqrt(m.variance))}
    # the same rows as two batches (the second knows where it starts): the same partial
    first = feat.partial_fit(Batch(pa.table({"x": values[:2]}), str, 0), use[:2])
    second = feat.partial_fit(Batch(pa.table({"x": values[2:]}), str, 2), use[2:])
    assert feat.merge(second, first) == whole


def _preprocess_state(tmp_path, x: np.ndarray, batch_rows: int) -> tuple[dict, np.ndarray]:
    """The fitted state of `x` through ingest and preprocess, and its standardized train rows."""
    if not (tmp_path / "snap").exists():
        lines = ["id,x"] + [f"{i},{float(v)!r}" for i, v in enumerate(x)]
        (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
        ingest = IngestParams.model_validate(
            {"key": "id", "sources": [{"name": "big", "format": "csv", "path": "big.csv"}]}
        )
        run_ingest(ingest, tmp_path, tmp_path / "snap")
    pre = PreprocessParams.model_validate(
        {
            "split": {"ratios": RATIOS},
            "features": [{"name": "x", "kind": "numeric", "standardize": True}],
            "batch_rows": batch_rows,
        }
    )
    out = tmp_path / f"pre{batch_rows}"
    run_preprocess(pre, tmp_path / "snap", out)
    z = pq.read_table(out / "train.parquet").column("x").to_numpy()
    return read_state(out).state["x"], z


RATIOS = {"train": 0.7, "test": 0.3}


def test_preprocess_stores_the_same_bits_whatever_its_batch_size(tmp_path):
    """Through ingest and preprocess: a large-offset column's state is the block-by-block
    moments of its train rows, bit for bit, whatever `preprocess.batch_rows` cuts; and
    standardizing it gives mean 0 and std 1."""
    n = 2 * BLOCK_ROWS + 1808  # three blocks, the last one short
    x = 1.7e9 + np.random.default_rng(3).normal(0, 5, n)
    train = assign_splits([str(i) for i in range(n)], RATIOS, 0) == 0
    want = _blocks_reference(x, train, BLOCK_ROWS)
    expected = json.loads(
        json.dumps({"count": want.count, "mean": want.mean, "std": float(np.sqrt(want.variance))})
    )
    first_z = None
    for batch_rows in (1000, 4096, 777, n):
        state, z = _preprocess_state(tmp_path, x, batch_rows)
        assert state == expected, batch_rows
        if first_z is None:
            first_z = z
        assert z.tobytes() == first_z.tobytes(), batch_rows
    assert expected["std"] == pytest.approx(np.std(x[train]), rel=1e-9)
    assert 4.8 < expected["std"] < 5.2  # E[x²] − E[x]² gave 1.0 here
    assert abs(float(first_z.mean())) < 1e-3 and abs(float(first_z.std()) - 1) < 1e-3
