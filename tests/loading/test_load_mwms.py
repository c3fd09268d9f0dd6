"""`dataops.load(..., input_context=ctx)` under a real `tf.distribute.MultiWorkerMirroredStrategy`:
two CPU worker processes on loopback, `strategy.distribute_datasets_from_function`, a model
trained synchronously on the global batches. Each worker reads a disjoint, balanced part of every
epoch, together exactly the epoch; worker i's batch k is positions i, i+2, ... of the one-worker
stream's batch k with the same global batch size (so the global order does not depend on the
number of workers); a state saved after k steps restores every worker to exactly the rest."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dataops.loader import Loader
from tests.support.mwms import FEATURES, LEARNING_RATE, run_cluster

SPLIT = "train[:41]+validation[3:20]+test[-9:]"  # 67 examples over 3 shard files
GLOBAL_BATCH = 10  # 5 per worker; 67 = 6 * 10 + 7: both workers have a part of the last batch
RUNS = [
    {"options": {"repeat": 1}, "resume_after": [3]},
    {
        "options": {"shuffle": True, "seed": 5, "shuffle_buffer": 16, "interleave": 2, "repeat": 2},
        "resume_after": [3, 9],  # mid-epoch 0, and mid-epoch 1 (7 batches an epoch)
    },
    {
        "options": {"shuffle": True, "seed": 11, "shuffle_buffer": 7, "drop_remainder": True},
        "resume_after": [2],
    },
]


def one_worker(sharded, opts: dict) -> list[dict[str, list]]:
    """The one-worker stream with the global batch size: each batch's ids, weights and heights."""
    out = []
    for b in Loader(sharded, SPLIT, batch_size=GLOBAL_BATCH, features=FEATURES, **opts).iterator():
        out.append({k: b[k].numpy().tolist() for k in FEATURES})
    for b in out:
        b["id"] = [x.decode() for x in b["id"]]
    return out


def sgd(whole: list[dict[str, list]]) -> tuple[float, float]:
    """The same model trained in this process on the global batches (float64)."""
    w = b = 0.0
    for gb in whole:
        x, y = np.array(gb["weight"], np.float64), np.array(gb["height"], np.float64)
        err = w * x + b - y
        w, b = w - LEARNING_RATE * 2 * (err * x).mean(), b - LEARNING_RATE * 2 * err.mean()
    return w, b


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_multi_worker_mirrored_strategy_reads_each_epoch_once_in_the_global_order(
    sharded, tmp_path
):
    spec = {"dataset": str(sharded), "split": SPLIT, "global_batch": GLOBAL_BATCH, "runs": RUNS}
    workers = run_cluster(spec, 2, tmp_path, timeout=300)
    assert [w["replicas"] for w in workers] == [2, 2]
    all_ids = sorted(x for gb in one_worker(sharded, {}) for x in gb["id"])
    assert len(all_ids) == len(set(all_ids)) == 67
    for r, run in enumerate(RUNS):
        opts = run["options"]
        whole = one_worker(sharded, opts)
        parts = [w["runs"][r] for w in workers]
        assert [p["contexts"] for p in parts] == [[[2, 0, 5]], [[2, 1, 5]]]
        # the global order: worker i's batch k = positions i, i+2, ... of global batch k
        for i, p in enumerate(parts):
            assert p["batches"] == [gb["id"][i::2] for gb in whole], (r, i)
        # every step was one synchronous step over global batch k, on both workers
        assert parts[0]["counts"] == parts[1]["counts"] == [len(gb["id"]) for gb in whole]
        # each epoch: disjoint parts, together the epoch exactly once, balanced
        per_epoch = 67 // GLOBAL_BATCH + (0 if opts.get("drop_remainder") else 1)
        epoch_size = 60 if opts.get("drop_remainder") else 67
        for e in range(opts.get("repeat", 1)):
            got = [
                Counter(x for bt in p["batches"][e * per_epoch : (e + 1) * per_epoch] for x in bt)
                for p in parts
            ]
            assert not (got[0].keys() & got[1].keys())
            together = got[0] + got[1]
            assert set(together.values()) == {1} and sum(together.values()) == epoch_size
            assert set(together) <= set(all_ids)
            if epoch_size == 67:
                assert sorted(together) == all_ids
            assert abs(got[0].total() - got[1].total()) <= 1
        # the model: the same weights on both workers, those of training on the global batches
        assert parts[0]["weights"] == parts[1]["weights"]
        w, b = (float.fromhex(v) for v in parts[0]["weights"])
        assert (w, b) == pytest.approx(sgd(whole), rel=1e-5, abs=1e-6)
        # resume: a state saved after k steps gives each worker exactly its remaining batches
        for i, p in enumerate(parts):
            for res in p["resumes"]:
                k = res["k"]
                assert res["before"] == p["batches"][:k]
                assert res["before"] + res["after"] == p["batches"], (r, i, k)
                assert res["iterator_state"] == res["state"]
        assert [res["state"] for res in parts[0]["resumes"]] == [
            res["state"] for res in parts[1]["resumes"]
        ]


@pytest.mark.parametrize("opts", [r["options"] for r in RUNS])
def test_the_batch_size_groups_the_order_but_does_not_change_it(sharded, opts):
    """What the global batch size decides: the grouping (and, with drop_remainder, how many
    examples end each epoch unread) — the order of the examples is the same for every size."""

    def flat(size: int, **more) -> list[str]:
        return [x for b in one_worker_ids(sharded, size, {**opts, **more}) for x in b]

    whole = flat(10, drop_remainder=False)
    assert len(set(whole)) == 67 and len(whole) == 67 * opts.get("repeat", 1)
    for size in (10, 7, 4):
        if opts.get("drop_remainder"):  # one epoch, its first 67 // size * size examples
            assert flat(size) == whole[: 67 // size * size]
        else:
            assert flat(size) == whole


def one_worker_ids(sharded, batch_size: int, opts: dict) -> list[list[str]]:
    loader = Loader(sharded, SPLIT, batch_size=batch_size, features=["id"], **opts)
    return [[x.decode() for x in b["id"].numpy()] for b in loader.iterator()]
