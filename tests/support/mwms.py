"""A real `tf.distribute.MultiWorkerMirroredStrategy` cluster of local CPU workers reading a
dataset with `dataops.load(..., input_context=ctx)` (used by tests/loading/test_load_mwms.py).

`run_cluster(spec, n, tmp)` starts `n` processes of this module (`python -m
tests.support.mwms SPEC OUT`), each with its own `TF_CONFIG` (workers on free loopback ports),
waits for them and returns each worker's JSON result; on a failure or a timeout every process
it started is stopped (by its process group) and the error carries the workers' output.

A worker, for each run of the spec (loader options), records:
* `batches`: the `id`s of every batch of its part of the distributed dataset, while a tiny
  linear model (`height ≈ w * weight + b`, plain SGD, gradients all-reduced across the
  workers) takes one synchronous step on each global batch; `counts`: the all-reduced number
  of examples of each step; `weights`: `w` and `b` after the pass (as `float.hex`);
* `resumes`: for each `k` of `resume_after`, the first `k` batches of a fresh pass, the state
  after them (`Loader.state_after(k)`, and a `DatasetIterator`'s `state()` after `k` batches)
  and the batches of a new distributed dataset loaded from that state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.airflow import free_port, stop_process_group
from tests.support.project import REPO, tool_env

FEATURES = ["id", "weight", "height"]
LEARNING_RATE = 0.1


def _ids(batch: Any) -> list[str]:
    return [x.decode() for x in batch["id"].numpy()]


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: it starts the cluster

    import dataops
    from dataops.loader import Loader

    contexts: list[tuple[int, int, int]] = []

    def distributed(opts: dict[str, Any], state: str | None = None) -> Any:
        def fn(ctx: Any) -> Any:
            b = ctx.get_per_replica_batch_size(spec["global_batch"])
            contexts.append((ctx.num_input_pipelines, ctx.input_pipeline_id, b))
            return dataops.load(
                spec["dataset"],
                spec["split"],
                batch_size=b,
                input_context=ctx,
                state=state,
                features=FEATURES,
                **opts,
            )

        return strategy.distribute_datasets_from_function(fn)

    def local(batch: Any) -> Any:
        return strategy.experimental_local_results(batch)[0]

    with strategy.scope():
        w = tf.Variable(0.0, aggregation=tf.VariableAggregation.MEAN)
        b = tf.Variable(0.0, aggregation=tf.VariableAggregation.MEAN)

    @tf.function
    def step(x: Any, y: Any) -> Any:
        def replica(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(w * x + b - y))
            gw, gb = tape.gradient(loss, [w, b])
            rc = tf.distribute.get_replica_context()
            n = rc.all_reduce("SUM", tf.cast(tf.shape(y)[0], tf.float32))
            gw, gb = rc.all_reduce("SUM", [gw, gb])
            w.assign_sub(LEARNING_RATE * gw / n)
            b.assign_sub(LEARNING_RATE * gb / n)
            return n

        return local(strategy.run(replica, args=(x, y)))

    out: dict[str, Any] = {"replicas": strategy.num_replicas_in_sync, "runs": []}
    for run in spec["runs"]:
        opts = run["options"]
        w.assign(0.0)
        b.assign(0.0)
        batches, counts = [], []
        for batch in distributed(opts):
            mine = local(batch)
            batches.append(_ids(mine))
            counts.append(int(step(mine["weight"], mine["height"]).numpy()))
        n, i, per = contexts[-1]
        loader = Loader(
            spec["dataset"],
            spec["split"],
            batch_size=per,
            num_workers=n,
            worker_index=i,
            features=FEATURES,
            **opts,
        )
        resumes = []
        for k in run["resume_after"]:
            it = iter(distributed(opts))
            before = [_ids(local(next(it))) for _ in range(k)]
            state = loader.state_after(k).to_json()
            own = loader.iterator()
            for _ in range(k):
                next(own)
            after = [_ids(local(x)) for x in distributed(opts, state=state)]
            resumes.append(
                {
                    "k": k,
                    "before": before,
                    "state": state,
                    "iterator_state": own.state().to_json(),
                    "after": after,
                }
            )
        out["runs"].append(
            {
                "contexts": sorted(set(contexts)),
                "batches": batches,
                "counts": counts,
                "weights": [float(w.numpy()).hex(), float(b.numpy()).hex()],
                "resumes": resumes,
            }
        )
        contexts.clear()
    return out


def run_cluster(spec: dict[str, Any], n: int, tmp: Path, timeout: float) -> list[dict[str, Any]]:
    """Start `n` workers of one MultiWorkerMirroredStrategy cluster on loopback; their results.

    Ports are free when chosen, not reserved: if another process took one before a worker bound
    it, the cluster is started once more on new ports."""
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    attempt = 0
    while True:
        attempt += 1
        run = tmp / f"attempt{attempt}"
        run.mkdir()
        logs = [run / f"worker{i}.log" for i in range(n)]
        outs = [run / f"worker{i}.json" for i in range(n)]
        codes = _start_and_wait(spec_path, n, logs, outs, timeout)
        if codes == [0] * n:
            return [json.loads(o.read_text()) for o in outs]
        if attempt == 1 and any("Could not start gRPC server" in _tail(log) for log in logs):
            continue
        failed = any(c not in (None, 0) for c in codes)
        running = (
            "stopped: another worker failed"
            if failed
            else f"stopped at the {timeout:.0f} s timeout"
        )
        said = [f"exit {c}" if c is not None else running for c in codes]
        tails = "\n".join(f"--- worker {i} ({said[i]}):\n{_tail(logs[i])}" for i in range(n))
        raise AssertionError(f"MultiWorkerMirroredStrategy workers did not all finish:\n{tails}")


def _start_and_wait(
    spec_path: Path, n: int, logs: list[Path], outs: list[Path], timeout: float
) -> list[int | None]:
    """Run the `n` workers (TF_CONFIG on free loopback ports); their exit codes. Every process
    started is stopped (its process group) when it has not ended: on a failure, a timeout or an
    interrupt of the test."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    procs: list[subprocess.Popen] = []
    try:
        for i in range(n):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": i}}
            with logs[i].open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.support.mwms", str(spec_path), str(outs[i])],
                        cwd=REPO,
                        env=tool_env(TF_CONFIG=json.dumps(tf_config), PYTHONPATH=str(REPO)),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        return _wait(procs, timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                stop_process_group(p)


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[int | None]:
    """Exit codes once all exited, or as soon as one failed (the others would wait for it in
    a collective forever), or at the timeout (None for those still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [p.poll() for p in procs]
        if all(c == 0 for c in codes) or any(c not in (None, 0) for c in codes):
            return codes
        time.sleep(0.2)
    return [p.poll() for p in procs]


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:  # distinct ports (each was free a moment ago)
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no output)"


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = worker(json.loads(Path(sys.argv[1]).read_text()))
    Path(sys.argv[2]).write_text(json.dumps(result))
