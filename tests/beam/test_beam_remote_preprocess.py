"""Ingest, preprocess and serialize on Beam straight into a DVC remote (`--to-remote`), each
reading its input from there: the workspace holds neither the snapshot nor the preprocessed
folder, `dvc.lock` is the one `dvc commit` writes for the in-process bytes, and `dvc pull` in a
fresh clone brings them back.

Real DVC (dvc-s3) against a local S3-compatible server (moto's standalone server), real Beam
DirectRunner; skipped without Beam, boto3 or moto_server.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")
pytest.importorskip("dvc_s3", reason="dvc-s3 is not installed (the 's3' extra)")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")

from dataops.beam.ingest import run_ingest_beam  # noqa: E402
from dataops.beam.preprocess import run_preprocess_beam  # noqa: E402
from dataops.beam.serialize import run_serialize_beam  # noqa: E402
from dataops.config import parse_params  # noqa: E402
from dataops.errors import ConfigError, DatasetError  # noqa: E402
from tests.support.project import (  # noqa: E402
    git,
    make_project,
    run_cli,
    sh,
    small_params_data,
)
from tests.support.s3 import CREDENTIALS as BOTO_CREDENTIALS  # noqa: E402
from tests.support.s3 import moto_server  # noqa: E402

THREADS_2 = "--direct_num_workers=2 --direct_running_mode=multi_threading"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
COMMIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q")


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _objects(endpoint: str, prefix: str) -> set[str]:
    client = boto3.client("s3", endpoint_url=endpoint, **BOTO_CREDENTIALS)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="dvc", Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A project (git repository) with 60 sample rows, a default DVC remote `store` on moto's
    S3 server; sample and ingest built in-process and committed, only the sample pushed
    (preprocess and serialize not recorded). Also `reference`: the whole pipeline run in-process and committed
    (`dvc commit`): the bytes and the `dvc.lock` that `dvc repro` would leave."""
    mp = pytest.MonkeyPatch()
    for k, v in CREDENTIALS.items():
        mp.setenv(k, v)
    with moto_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, **BOTO_CREDENTIALS).create_bucket(Bucket="dvc")
        try:
            base = tmp_path_factory.mktemp("remote-pre")
            root = make_project(base / "ws", num_examples=None)
            data = small_params_data(60, serialize={"num_shards": 2})
            (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
            prefix = f"store-{base.name}"
            sh("dvc", "remote", "add", "-f", "-d", "store", f"s3://dvc/{prefix}", cwd=root)
            sh("dvc", "remote", "modify", "store", "endpointurl", endpoint, cwd=root)
            sh("git", "add", "-A", cwd=root)
            sh(*COMMIT, "-m", "s3", cwd=root)
            from dataops.stages.pipeline import run_pipeline

            run_pipeline(parse_params(data), root, validate=False)
            lock = yaml.safe_load((root / "dvc.lock").read_text())
            for stage in ("preprocess", "serialize", "validate"):
                lock["stages"].pop(stage, None)  # not recorded: as if never built here
            (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
            reference = base / "reference"
            shutil.copytree(root, reference, symlinks=True)
            sh("dvc", "commit", "-f", "-d", "-q", "serialize", cwd=reference)
            for out in ("preprocessed", "tfrecords"):
                shutil.rmtree(root / "data" / out)
            sh("dvc", "commit", "-f", "-d", "-q", "ingest", cwd=root)
            sh("dvc", "push", "-q", "sample", cwd=root)
            sh(*COMMIT, "-am", "ingested", cwd=root)
            yield root, reference, prefix, data, endpoint
        finally:
            mp.undo()


@pytest.mark.slow
def test_ingest_preprocess_serialize_through_the_remote_match_dvc_repro(built, tmp_path):
    root, reference, prefix, data, endpoint = built
    params = parse_params(data)
    ref = _lock(reference)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    del lock["stages"]["ingest"]  # not recorded: as if never built here
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    before = _objects(endpoint, prefix)

    # Ingest (the sample's three sources: the in-process ingest, into a scratch folder): the
    # parts and manifest.json go into the remote, the stale workspace copy is removed, the
    # entry is the one `dvc commit` writes.
    ingested = run_ingest_beam(
        params.ingest,
        root,
        root / "data" / "snapshot",
        params.dataset.on_error,
        THREADS_2,
        to_remote="store",
    )
    assert not (root / "data" / "snapshot").exists()
    assert _lock(root)["ingest"] == ref["ingest"]
    snap = ref["ingest"]["outs"][0]
    assert ingested.locked.md5 == snap["md5"]  # type: ignore[attr-defined]
    new = _objects(endpoint, prefix) - before
    assert len(new) == snap["nfiles"] + 1  # every file and the .dir manifest
    before |= new

    # The CLI, the snapshot read from the remote: the split files and state.json go into the
    # remote, dvc.lock's preprocess entry is the one `dvc commit` writes for the in-process bytes.
    r = run_cli(
        "preprocess",
        "--engine",
        "beam",
        "--beam-options",
        THREADS_2,
        "--to-remote",
        "store",
        cwd=root,
        env=CREDENTIALS,
    )
    assert r.returncode == 0, r.stderr
    assert not (root / "data" / "preprocessed").exists()
    assert _lock(root)["preprocess"] == ref["preprocess"]
    locked = ref["preprocess"]["outs"][0]
    new = _objects(endpoint, prefix) - before
    assert len(new) == locked["nfiles"] + 1  # every file and the .dir manifest
    assert f"{prefix}/files/md5/{locked['md5'][:2]}/{locked['md5'][2:]}" in new

    # Again with the snapshot in the workspace: the same entry, nothing new uploaded
    # (content-addressed).
    shutil.copytree(reference / "data" / "snapshot", root / "data" / "snapshot")
    result = run_preprocess_beam(
        params.preprocess,
        root / "data" / "snapshot",
        root / "data" / "preprocessed",
        params.dataset.on_error,
        THREADS_2,
        to_remote="store",
    )
    assert result.locked.md5 == locked["md5"]  # type: ignore[attr-defined]
    assert _lock(root)["preprocess"] == ref["preprocess"]
    assert _objects(endpoint, prefix) - before == new
    assert not (root / "data" / "preprocessed").exists()
    shutil.rmtree(root / "data" / "snapshot")

    # The chain: serialize reads the preprocessed folder from the remote; the whole dvc.lock
    # is byte for byte the one of the in-process run.
    run_serialize_beam(
        params.serialize,
        params.dataset,
        root / "data" / "preprocessed",
        root / "data" / "tfrecords",
        THREADS_2,
        to_remote="store",
    )
    assert (root / "dvc.lock").read_text() == (reference / "dvc.lock").read_text()
    out = sh("dvc", "repro", "--allow-missing", "serialize", cwd=root)
    assert "Stage 'preprocess' didn't change, skipping" in out
    assert "Stage 'serialize' didn't change, skipping" in out

    # `dvc gc --cloud` keeps every object the lock names (it reads the .dir manifests).
    everything = _objects(endpoint, prefix)
    sh("dvc", "gc", "-w", "-c", "-f", "-q", cwd=root)
    assert before | new <= _objects(endpoint, prefix)
    assert len(_objects(endpoint, prefix)) <= len(everything)

    # A fresh clone pulls the in-process bytes.
    assert git(root, "status", "--porcelain") == "M dvc.lock"
    sh(*COMMIT, "-am", "built", cwd=root)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(root), str(clone), cwd=tmp_path)
    sh("dvc", "pull", "-q", "--with-deps", "serialize", cwd=clone)
    for folder in ("snapshot", "preprocessed", "tfrecords"):
        assert _digests(clone / "data" / folder) == _digests(reference / "data" / folder)
    status = sh("dvc", "status", "sample", "ingest", "preprocess", "serialize", cwd=clone)
    assert "Data and pipelines are up to date." in status


def test_a_snapshot_missing_from_the_remote_fails_in_one_line_and_records_nothing(built, tmp_path):
    """The snapshot neither in the workspace nor in the remote (a local remote no one pushed
    to): one line naming it and what to do; dvc.lock untouched, no output written."""
    root, _, _, data, _ = built
    ws = tmp_path / "ws"
    sh("git", "clone", "-q", str(root), str(ws), cwd=tmp_path)
    sh("dvc", "remote", "add", "-f", "-d", "nas", str(tmp_path / "nas"), cwd=ws)
    lock_before = (ws / "dvc.lock").read_bytes()
    md5 = _lock(ws)["ingest"]["outs"][0]["md5"]
    params = parse_params(data)
    with pytest.raises(DatasetError) as e:
        run_preprocess_beam(
            params.preprocess,
            ws / "data" / "snapshot",
            ws / "data" / "preprocessed",
            to_remote="nas",
        )
    assert str(e.value) == (
        f"data/snapshot: not in the workspace, and remote 'nas' has no {md5}"
        f" ({tmp_path}/nas/files/md5/{md5[:2]}/{md5[2:]}): dvc push it from where it was built"
    )
    assert (ws / "dvc.lock").read_bytes() == lock_before
    assert not (ws / "data" / "preprocessed").exists()


def test_a_snapshot_recorded_nowhere_is_named(built, tmp_path):
    root = built[0]
    ws = tmp_path / "ws"
    sh("git", "clone", "-q", str(root), str(ws), cwd=tmp_path)
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    del lock["stages"]["ingest"]
    (ws / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    params = parse_params(built[3])
    with pytest.raises(ConfigError) as e:
        run_preprocess_beam(
            params.preprocess,
            ws / "data" / "snapshot",
            ws / "data" / "preprocessed",
            to_remote="store",
        )
    assert str(e.value) == (
        "--to-remote: data/snapshot, a dependency of stage 'preprocess', is not in the"
        " workspace and no stage's dvc.lock entry records it as a folder to read from the remote"
        " (dvc pull it first)"
    )


def test_ingest_refuses_a_source_missing_from_the_workspace(built, tmp_path):
    """Ingest reads its sources in the workspace, never from the remote."""
    root, _, _, data, _ = built
    ws = tmp_path / "ws"
    sh("git", "clone", "-q", str(root), str(ws), cwd=tmp_path)
    params = parse_params(data)
    with pytest.raises(ConfigError) as e:
        run_ingest_beam(params.ingest, ws, ws / "data" / "snapshot", to_remote="store")
    assert str(e.value) == (
        "--to-remote: data/sample, a source of stage 'ingest', is not in the workspace:"
        " ingest reads its sources there (dvc pull it first)"
    )
    assert not (ws / "data" / "snapshot").exists()


@pytest.mark.parametrize("stage", ["ingest", "preprocess"])
def test_the_cli_needs_the_beam_engine_for_to_remote(built, stage):
    r = run_cli(stage, "--to-remote", "store", cwd=built[0])
    assert r.returncode == 2
    assert "--to-remote needs --engine beam (its workers do the uploads)" in r.stderr


@pytest.mark.slow
def test_ingest_parts_written_by_workers_go_into_a_local_remote(tmp_path, monkeypatch):
    """One CSV source: the workers write the snapshot's parts side by side and upload them
    into a local (shared-disk) remote; dvc.lock is the one `dvc commit` writes for the
    in-process snapshot, and `dvc pull` brings its bytes."""
    import dataops.beam.ingest as beam_ingest
    from dataops.config import IngestParams
    from dataops.stages.ingest import run_ingest

    ws = tmp_path / "ws"
    ws.mkdir()
    rows = ["id,x"] + [f"{i},{i * 0.5}" for i in range(600)]
    rows[7] = "9999"  # a malformed row (its key unique: a repeat runs in-process): skipped
    (ws / "t.csv").write_text("\n".join(rows) + "\n")
    stage = {"cmd": "dataops ingest", "deps": ["t.csv"], "outs": ["snap"]}
    (ws / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"ingest": stage}}))
    sh("git", "init", "-q", cwd=ws)
    sh("dvc", "init", "-q", cwd=ws)
    sh("dvc", "remote", "add", "-d", "nas", str(tmp_path / "nas"), cwd=ws)
    params = IngestParams.model_validate(
        {"key": "id", "batch_rows": 2, "sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    )
    local = run_ingest(params, ws, ws / "snap", "skip")
    assert len(list((ws / "snap").glob("snapshot-*.parquet"))) == 2  # 512 rows a part
    sh("dvc", "commit", "-f", "-q", "ingest", cwd=ws)
    reference = (ws / "dvc.lock").read_text()
    expected = _digests(ws / "snap")
    (ws / "dvc.lock").unlink()

    def no_fallback(*args: object) -> None:
        raise AssertionError("the in-process fallback ran; this test is about the workers' parts")

    monkeypatch.setattr(beam_ingest, "_in_process", no_fallback)
    result = run_ingest_beam(
        params, ws, ws / "snap", "skip", THREADS_2, range_bytes=1000, to_remote="nas"
    )
    assert (ws / "dvc.lock").read_text() == reference
    assert not (ws / "snap").exists()
    assert (result.num_rows, result.skipped) == (local.num_rows, local.skipped)
    assert local.num_rows == 599 and local.skipped == {"malformed_row": 1}
    objects = [p for p in (tmp_path / "nas").rglob("*") if p.is_file()]
    assert len(objects) == len(expected) + 1  # every file and the .dir manifest
    sh("dvc", "pull", "-q", cwd=ws)
    assert _digests(ws / "snap") == expected
