"""Reads sharded across training workers: `num_workers=N, worker_index=i` (or a
`tf.distribute.InputContext`). Worker i's batch k is its part of global batch k (the
positions of it = i mod N) of the one-worker stream with batch size N * batch_size; so the
workers together read each epoch exactly once, each a balanced part, and the global order
does not depend on N for a given global batch size. Every worker's state is the global
position, and resumes exactly — with the same or with another number of workers."""

from __future__ import annotations

import pytest

from dataops.errors import ConfigError
from dataops.loader import Loader

SPLIT = "train[:41]+validation[3:20]+test[-9:]"  # 67 examples over 3 shard files


def batches(loader_or_it, limit: int | None = None) -> list[list[str]]:
    it = loader_or_it.iterator() if isinstance(loader_or_it, Loader) else loader_or_it
    out = []
    for b in it:
        out.append([x.decode() for x in b["id"].numpy()])
        if limit is not None and len(out) == limit:
            break
    return out


def _global(sharded, n, b, **opts):
    return batches(Loader(sharded, SPLIT, batch_size=n * b, features=["id"], **opts))


@pytest.mark.parametrize(
    "opts",
    [
        {"repeat": 2},
        {"repeat": 2, "drop_remainder": True},
        {"shuffle": True, "seed": 5, "shuffle_buffer": 16, "interleave": 2, "repeat": 2},
        {"shuffle": True, "seed": 5, "shuffle_buffer": 7, "drop_remainder": True},
        {"cache": True, "shuffle": True, "seed": 2, "shuffle_buffer": 10},
    ],
)
@pytest.mark.parametrize(("n", "b"), [(2, 4), (3, 5), (2, 3)])  # (2, 3): 67 = 11 * 6 + 1
def test_workers_split_each_global_batch(sharded, opts, n, b):
    whole = _global(sharded, n, b, **opts)
    parts = [
        batches(
            Loader(
                sharded,
                SPLIT,
                batch_size=b,
                features=["id"],
                num_workers=n,
                worker_index=i,
                **opts,
            )
        )
        for i in range(n)
    ]
    at = [0] * n  # worker i's batch k: positions i, i+n, ... of global batch k
    for gb in whole:
        for i in range(n):
            if mine := gb[i::n]:  # (a worker with no part of an epoch's last batch skips it)
                assert parts[i][at[i]] == mine, (at[i], i)
                at[i] += 1
    assert at == [len(p) for p in parts]
    every = sorted(x for p in parts for bt in p for x in bt)
    assert every == sorted(x for gb in whole for x in gb)  # together: each example once an epoch
    sizes = [sum(len(bt) for bt in p) for p in parts]
    assert max(sizes) - min(sizes) <= opts.get("repeat", 1)  # balanced: within one per epoch


@pytest.mark.parametrize("shuffle", [False, True])
def test_each_worker_resumes_exactly_and_elastically(sharded, shuffle):
    opts = dict(shuffle=shuffle, seed=9, shuffle_buffer=12, repeat=2, features=["id"])
    n, b = 2, 6
    loaders = [
        Loader(sharded, SPLIT, batch_size=b, num_workers=n, worker_index=i, **opts)
        for i in range(n)
    ]
    full = [batches(ld) for ld in loaders]
    its = [ld.iterator() for ld in loaders]
    before = [batches(it, 7) for it in its]
    states = [it.state() for it in its]
    assert states[0] == states[1]  # one global position for every worker
    for i in range(n):
        fresh = Loader(sharded, SPLIT, batch_size=b, num_workers=n, worker_index=i, **opts)
        assert before[i] + batches(fresh.iterator(states[i].to_json())) == full[i]
        assert fresh.state_after(7) == states[i]
    # the same global batch (12) over 3 workers (4 each), or 1 worker, continues the same stream
    rest_one = batches(Loader(sharded, SPLIT, batch_size=12, **opts).iterator(states[0]))
    rest_three = [
        batches(
            Loader(sharded, SPLIT, batch_size=4, num_workers=3, worker_index=i, **opts).iterator(
                states[0]
            )
        )
        for i in range(3)
    ]
    for k, gb in enumerate(rest_one):
        assert sorted(
            x for i in range(3) if k < len(rest_three[i]) for x in rest_three[i][k]
        ) == sorted(gb)


def test_input_context_gives_the_worker(sharded):
    import tensorflow as tf

    ctx = tf.distribute.InputContext(
        num_input_pipelines=3, input_pipeline_id=2, num_replicas_in_sync=3
    )
    a = batches(Loader(sharded, SPLIT, batch_size=4, features=["id"], input_context=ctx))
    b = batches(
        Loader(sharded, SPLIT, batch_size=4, features=["id"], num_workers=3, worker_index=2)
    )
    assert a == b and a
    with pytest.raises(ConfigError, match="input_context says worker 2 of 3"):
        Loader(sharded, SPLIT, input_context=ctx, num_workers=2, worker_index=1)
    with pytest.raises(ConfigError, match=r"worker_index must be in 0..1 \(num_workers=2\), got 2"):
        Loader(sharded, SPLIT, num_workers=2, worker_index=2)
