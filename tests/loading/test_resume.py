"""Exact resumption: stream before a save + stream after a restore == the uninterrupted stream."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataops
from dataops.errors import DatasetError
from dataops.loader import Loader

SPLIT = "train[:41]+validation[3:20]+test[-9:]"  # 67 examples over 3 shard files of 3 shards each


def batch_ids(batch) -> list[str]:
    return [x.decode() for x in batch["id"].numpy()]


def stream(it, limit: int | None = None) -> list[list[str]]:
    out = []
    for batch in it:
        out.append(batch_ids(batch))
        if limit is not None and len(out) == limit:
            break
    return out


def flat(batches: list[list[str]]) -> list[str]:
    return [x for b in batches for x in b]


options = st.fixed_dictionaries(
    {
        "batch_size": st.integers(1, 9),
        "shuffle": st.booleans(),
        "seed": st.integers(0, 2**40),
        "shuffle_buffer": st.integers(1, 30),
        "interleave": st.integers(1, 4),
        "drop_remainder": st.booleans(),
        "repeat": st.integers(1, 3),
    }
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(opts=options, cut=st.floats(0, 1), via_json=st.booleans())
def test_resume_gives_exactly_the_rest(sharded, opts, cut, via_json):
    features = ["id"]
    full = stream(Loader(sharded, SPLIT, features=features, **opts).iterator())
    k = int(round(cut * len(full)))
    it = Loader(sharded, SPLIT, features=features, **opts).iterator()
    before = stream(it, k) if k else []
    state = it.state()
    assert len(state.to_json()) < 400
    saved = state.to_json() if via_json else state
    fresh = Loader(
        sharded, SPLIT, features=features, **opts
    )  # a new process would build a new loader
    after = stream(fresh.iterator(saved))
    assert flat(before) + flat(after) == flat(full)
    assert before + after == full  # saved at batch boundaries, so the batches line up too
    assert fresh.state_after(k) == state  # the state is arithmetic on the batch count


def test_load_with_state_and_across_epochs(sharded):
    opts = dict(batch_size=10, shuffle=True, seed=11, shuffle_buffer=16, repeat=3)
    ld = Loader(sharded, SPLIT, **opts)
    full = flat(stream(ld.dataset()))
    state = ld.state_after(9)  # 67 examples → 7 batches per epoch: this is epoch 1, position 20
    assert (state.epoch, state.position) == (1, 20)
    rest = flat(stream(dataops.load(sharded, SPLIT, state=state.model_dump(), **opts)))
    assert full[: 67 + 20] + rest == full


def test_state_is_small_whatever_the_buffer(sharded):
    a = Loader(sharded, "train", shuffle=True, seed=1, shuffle_buffer=10).state_after(3).to_json()
    b = (
        Loader(sharded, "train", shuffle=True, seed=1, shuffle_buffer=1_000_000)
        .state_after(3)
        .to_json()
    )
    assert len(a) < 400 and len(b) < 400 and abs(len(a) - len(b)) <= 6


def test_tf_train_checkpoint(sharded, tmp_path):
    import tensorflow as tf

    opts = dict(batch_size=6, shuffle=True, seed=5, shuffle_buffer=20, repeat=2, features=["id"])
    full = stream(Loader(sharded, SPLIT, **opts).iterator())
    it = Loader(sharded, SPLIT, **opts).iterator()
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(data=it, step=step)
    before = stream(it, 15)
    step.assign(15)
    path = ckpt.write(str(tmp_path / "ckpt" / "c"))
    size = sum(p.stat().st_size for p in (tmp_path / "ckpt").iterdir())
    assert size < 2048, size  # the iterator is one small string, not a shuffle buffer

    it2 = Loader(sharded, SPLIT, **opts).iterator()
    step2 = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(data=it2, step=step2).read(path).assert_consumed()
    assert int(step2.numpy()) == 15 and it2.state() == it.state()
    assert before + stream(it2) == full


def test_restore_against_another_fingerprint_fails(sharded, small_tfrecords, tmp_path):
    import tensorflow as tf

    ld = Loader(sharded, "train", batch_size=4)
    state = ld.state_after(2)
    other = state.model_copy(update={"fingerprint": "f" * 64})
    with pytest.raises(
        DatasetError,
        match=rf"fingerprint {'f' * 64} .*this dataset has fingerprint {ld.fingerprint}",
    ):
        ld.iterator(other)
    with pytest.raises(DatasetError, match=rf"fingerprint {'f' * 64}"):
        dataops.load(sharded, "train", batch_size=4, state=other)
    with pytest.raises(
        DatasetError, match=r"saved with batch_size=4, this loader has batch_size=5"
    ):
        Loader(sharded, "train", batch_size=5).iterator(state)
    with pytest.raises(DatasetError, match=r"split 'train', this loader reads 'test'"):
        Loader(sharded, "test", batch_size=4).iterator(state)

    # Through tf.train.Checkpoint: a checkpoint of another version (1 shard per split, so
    # another fingerprint) is refused on restore, naming both fingerprints.
    single = Loader(small_tfrecords, "train", batch_size=4)
    assert single.fingerprint != ld.fingerprint
    it = single.iterator()
    next(it)
    path = tf.train.Checkpoint(data=it).write(str(tmp_path / "c"))
    target = Loader(sharded, "train", batch_size=4).iterator()
    with pytest.raises(
        DatasetError,
        match=rf"fingerprint {single.fingerprint} .*this dataset has fingerprint {ld.fingerprint}",
    ):
        tf.train.Checkpoint(data=target).read(path)


def test_drawn_seed_is_recorded_and_adopted_on_restore(sharded):
    opts = dict(batch_size=8, shuffle=True, shuffle_buffer=20, features=["id"])
    ld = Loader(sharded, SPLIT, **opts)  # seed=None: a random seed, recorded in the state
    full = stream(ld.dataset())
    it = ld.iterator()
    before = stream(it, 3)
    again = Loader(sharded, SPLIT, **opts)  # draws another seed, but takes the state's on restore
    assert again.seed != ld.seed
    assert before + stream(again.iterator(it.state().to_json())) == full
    with pytest.raises(DatasetError, match=r"saved with seed="):
        Loader(sharded, SPLIT, seed=ld.seed + 1, **opts).iterator(it.state())
