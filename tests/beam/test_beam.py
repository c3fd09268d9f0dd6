"""The Beam drivers write the in-process drivers' bytes, whatever the workers and bundles.

Needs Apache Beam (the `beam` extra); skipped without it. DirectRunner only: it runs offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")

from dataops.beam.preprocess import run_preprocess_beam  # noqa: E402
from dataops.beam.serialize import run_serialize_beam  # noqa: E402
from dataops.errors import ConfigError, DatasetError  # noqa: E402
from dataops.naming import SAMPLE_DIR  # noqa: E402
from dataops.stages.ingest import run_ingest  # noqa: E402
from dataops.stages.preprocess import run_preprocess  # noqa: E402
from dataops.stages.serialize import run_serialize  # noqa: E402
from dataops.stages.split_assign import assign_splits  # noqa: E402
from tests.support.project import small_params  # noqa: E402
from tests.support.s3 import CREDENTIALS, moto_server  # noqa: E402

IN_MEMORY = "--direct_num_workers=1 --direct_running_mode=in_memory"
THREADS_2 = "--direct_num_workers=2 --direct_running_mode=multi_threading"
THREADS_4 = "--direct_num_workers=4 --direct_running_mode=multi_threading"
PROCESSES_2 = "--direct_num_workers=2 --direct_running_mode=multi_processing"
PROCESSES_4 = "--direct_num_workers=4 --direct_running_mode=multi_processing"


def _digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory`, by relative path."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def beam_project(tmp_path_factory):
    """240 sample rows (images, CSV, JSON Lines) through the in-process stages, preprocess in
    batches of 50 rows (five batches, so tasks and merges cross batches)."""
    from dataops.stages.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("beam")
    params = small_params(240, preprocess={"batch_rows": 50})
    run_pipeline(params, root, validate=False)
    return root, params


@pytest.mark.parametrize(
    ("options", "batches_per_task"),
    [(IN_MEMORY, 1), (THREADS_2, 3), (THREADS_4, 2)],
)
def test_preprocess_on_beam_writes_the_same_bytes(
    beam_project, tmp_path, options, batches_per_task
):
    root, params = beam_project
    out = tmp_path / "pre"
    result = run_preprocess_beam(
        params.preprocess, root / "data" / "snapshot", out, "fail", options, batches_per_task
    )
    assert _digests(out) == _digests(root / "data" / "preprocessed")
    assert sum(result.num_examples.values()) == 240


@pytest.mark.parametrize(
    "update",
    [{}, {"num_shards": 3, "batch_rows": 7}, {"num_shards": 2, "compression": "gzip"}],
    ids=["planned", "3-shards-7-row-batches", "gzip"],
)
@pytest.mark.parametrize("options", [IN_MEMORY, THREADS_4])
def test_serialize_on_beam_writes_the_same_bytes(beam_project, tmp_path, options, update):
    root, params = beam_project
    ser = params.serialize.model_copy(update=update)
    pre = root / "data" / "preprocessed"
    run_serialize(ser, params.dataset, pre, tmp_path / "ref")
    result = run_serialize_beam(ser, params.dataset, pre, tmp_path / "beam", options)
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "ref")
    assert len(result.metadata.splits[0].shards) == (update.get("num_shards") or 1)


@pytest.mark.slow
@pytest.mark.parametrize("options", [PROCESSES_2, PROCESSES_4])
def test_whole_build_in_worker_processes_writes_the_same_bytes(beam_project, tmp_path, options):
    root, params = beam_project
    ser = params.serialize.model_copy(update={"num_shards": 4})
    run_preprocess_beam(
        params.preprocess, root / "data" / "snapshot", tmp_path / "pre", "fail", options, 2
    )
    assert _digests(tmp_path / "pre") == _digests(root / "data" / "preprocessed")
    run_serialize(ser, params.dataset, tmp_path / "pre", tmp_path / "ref")
    run_serialize_beam(ser, params.dataset, tmp_path / "pre", tmp_path / "beam", options)
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "ref")


def _project(tmp_path, **overrides):
    from dataops.config import SampleParams
    from dataops.stages.sample import generate_sample

    params = small_params(60, preprocess={"batch_rows": 16}, **overrides)
    generate_sample(tmp_path / SAMPLE_DIR, SampleParams(num_examples=60))
    return params


def test_a_train_image_failing_in_pass_2_is_refitted_as_in_process(tmp_path):
    """A train row whose image fails only when decoded (pass 2) is left out of the statistics:
    both drivers refit, to the same bytes."""
    params = _project(tmp_path, dataset={"on_error": "skip"})
    rows = [line.split(",") for line in (tmp_path / SAMPLE_DIR / "attributes.csv").open()]
    weighed = [int(r[0]) for r in rows[1:] if r[1]]
    split = assign_splits([str(i) for i in weighed], params.preprocess.split.ratios, 0)
    victim = weighed[int(np.flatnonzero(split == 0)[-1])]  # a late batch: others settle first
    next((tmp_path / SAMPLE_DIR / "images").rglob(f"{victim}.png")).write_bytes(b"junk")
    run_ingest(params.ingest, tmp_path, tmp_path / "snap", "skip")
    ref = run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "ref", "skip")
    got = run_preprocess_beam(
        params.preprocess, tmp_path / "snap", tmp_path / "beam", "skip", THREADS_2
    )
    assert got == ref.__class__(tmp_path / "beam", ref.num_examples, ref.skipped)
    assert got.skipped == {"unreadable_image": 1}
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "ref")


def test_the_first_bad_row_in_row_order_is_reported(tmp_path):
    """Two bad rows in different batches: Beam names the first in row order, as in-process,
    whichever worker finished first, and writes nothing."""
    params = _project(tmp_path)
    csv = tmp_path / SAMPLE_DIR / "attributes.csv"
    lines = csv.read_text().splitlines()
    for n, word in ((5, "heavy"), (50, "light")):
        cells = lines[n].split(",")
        cells[1] = word
        lines[n] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    run_ingest(params.ingest, tmp_path, tmp_path / "snap")
    with pytest.raises(DatasetError) as ref:
        run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "ref")
    with pytest.raises(DatasetError) as got:
        run_preprocess_beam(
            params.preprocess, tmp_path / "snap", tmp_path / "beam", "fail", THREADS_4
        )
    assert str(got.value) == str(ref.value)
    assert "line 6 (id='5'): column 'weight': 'heavy' is not a number" in str(got.value)
    assert not (tmp_path / "beam").exists()


@pytest.fixture
def s3(tmp_path):
    """A local S3-compatible server (moto's standalone server) with a bucket `data`; yields
    (boto3 client, Beam options that reach it). Stopped after the test."""
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")
    with moto_server() as url:
        client = boto3.client("s3", endpoint_url=url, **CREDENTIALS)
        client.create_bucket(Bucket="data")
        options = (
            f"--s3_endpoint_url={url} --s3_access_key_id=test --s3_secret_access_key=test"
            " --s3_region_name=us-east-1 --temp_location=s3://data/tmp"
        )
        yield client, options


def _s3_digests(client, prefix: str) -> dict[str, str]:
    listing = client.list_objects_v2(Bucket="data", Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: hashlib.sha256(
            client.get_object(Bucket="data", Key=o["Key"])["Body"].read()
        ).hexdigest()
        for o in listing
    }


@pytest.mark.slow
def test_build_from_and_to_s3_writes_the_same_bytes(beam_project, s3, tmp_path):
    """Snapshot on S3 → preprocess on Beam → S3 → serialize on Beam → S3, scratch space on S3
    too (`--temp_location`): the objects are the local in-process files, byte for byte, and
    no scratch object is left."""
    root, params = beam_project
    client, options = s3
    for f in sorted((root / "data" / "snapshot").iterdir()):
        client.upload_file(str(f), "data", f"snapshot/{f.name}")
    client.put_object(Bucket="data", Key="pre/stale.parquet", Body=b"from an older run")
    opts = f"{options} {THREADS_2}"
    run_preprocess_beam(params.preprocess, "s3://data/snapshot", "s3://data/pre", "fail", opts, 2)
    assert _s3_digests(client, "pre/") == _digests(root / "data" / "preprocessed")
    ser = params.serialize.model_copy(update={"num_shards": 3})
    run_serialize(ser, params.dataset, root / "data" / "preprocessed", tmp_path / "ref")
    run_serialize_beam(ser, params.dataset, "s3://data/pre", "s3://data/ds", opts)
    assert _s3_digests(client, "ds/") == _digests(tmp_path / "ref")
    assert _s3_digests(client, "tmp/") == {}
    with pytest.raises(ConfigError, match="must be a folder inside a bucket"):
        run_serialize_beam(ser, params.dataset, "s3://data/pre", "s3://data/", opts)
    assert "ds/metadata.json" in _s3_digests(client, "")


def test_tasks_are_ranges_of_many_batches_covering_each_once():
    """A few tasks per worker, each at most `MAX_BATCHES_PER_TASK` batches, in order, every
    batch in exactly one task."""
    from dataops.beam.tasks import MAX_BATCHES_PER_TASK, TASKS_PER_WORKER, tasks_for

    for num_batches, workers in [(1, 1), (5, 4), (1450, 2), (13_500, 1)]:
        tasks = tasks_for(num_batches, workers, None)
        covered = [i for a, b in tasks for i in range(a, b)]
        assert covered == list(range(num_batches))
        assert all(b - a <= MAX_BATCHES_PER_TASK for a, b in tasks)
        assert len(tasks) <= max(
            TASKS_PER_WORKER * workers, num_batches // MAX_BATCHES_PER_TASK + 1
        )
    assert len(tasks_for(1450, 2, None)) == TASKS_PER_WORKER * 2
    assert tasks_for(5, 1, 2) == [(0, 2), (2, 4), (4, 5)]


def test_write_jobs_put_the_train_split_alone_and_the_small_ones_together():
    """Preprocess's write jobs: one per worker at most, each split in exactly one, the
    large train split alone."""
    from dataops.beam.tasks import balanced_groups

    assert balanced_groups([0.8, 0.1, 0.1], 2) == [[0], [1, 2]]
    assert balanced_groups([0.1, 0.1, 0.8], 2) == [[0, 1], [2]]
    assert balanced_groups([0.8, 0.1, 0.1], 1) == [[0, 1, 2]]
    assert balanced_groups([0.8, 0.1, 0.1], 4) == [[0], [1], [2]]
    for sizes, workers in [([5, 4, 3, 3, 3], 2), ([1.0] * 7, 3), ([0.0, 2.0], 5)]:
        groups = balanced_groups(sizes, workers)
        assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
        assert len(groups) == min(workers, len(sizes))


def test_a_task_reads_exact_batches_whatever_the_row_groups(tmp_path):
    """Rows [13, 88) of a file in row groups of 7, cut into batches of 10: the rows, in
    order, as 10-row tables (the last shorter), from one open file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataops.stages.snapshot_files import SnapshotFiles

    pq.write_table(
        pa.table({"id": list(range(100)), "x": [str(i) for i in range(100)]}),
        tmp_path / "t.parquet",
        row_group_size=7,
    )
    tables = list(SnapshotFiles([str(tmp_path / "t.parquet")]).iter_tables(13, 88, 10, ["id"]))
    assert [t.num_rows for t in tables] == [10] * 7 + [5]
    assert [v for t in tables for v in t.column("id").to_pylist()] == list(range(13, 88))
    assert all(t.column_names == ["id"] for t in tables)
