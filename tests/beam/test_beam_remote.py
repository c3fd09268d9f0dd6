"""Serialize on Beam straight into a DVC remote (`--to-remote`): the workspace never holds the
shards, `dvc.lock` is the one `dvc commit` writes for the same bytes, and `dvc pull` in a fresh
clone brings those bytes back.

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

from dataops.beam.remote import (  # noqa: E402
    RemoteInput,
    RemoteTarget,
    input_files,
    plan_target,
    record,
)
from dataops.beam.serialize import run_serialize_beam  # noqa: E402
from dataops.beam.upload import upload_files  # noqa: E402
from dataops.config import parse_params  # noqa: E402
from dataops.errors import ConfigError, DataopsError, DatasetError  # noqa: E402
from tests.support.project import (  # noqa: E402
    git,
    make_project,
    run_cli,
    sh,
    small_params_data,
)
from tests.support.s3 import moto_server  # noqa: E402

THREADS_2 = "--direct_num_workers=2 --direct_running_mode=multi_threading"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's standalone S3 server with a bucket `dvc`, for the module; stopped after it."""
    with moto_server() as url:
        boto3.client("s3", endpoint_url=url, **_boto_credentials()).create_bucket(Bucket="dvc")
        yield url


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "region_name": "us-east-1",
    }


def _objects(endpoint: str, prefix: str) -> set[str]:
    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="dvc", Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project (a git repository, as a fresh clone) with 60 sample rows, two shards per
    split and a second DVC remote `store` on S3, made the default (its endpoint is set by
    `built`); nothing built."""
    root = make_project(tmp_path_factory.mktemp("remote") / "ws", num_examples=None)
    data = small_params_data(60, serialize={"num_shards": 2})
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    prefix = f"store-{root.parent.name}"
    sh("dvc", "remote", "add", "-f", "-d", "store", f"s3://dvc/{prefix}", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s3", cwd=root)
    return root, prefix, data


@pytest.fixture(scope="module")
def built(project, s3_endpoint):
    """A copy of `project` with the remote's endpoint on the S3 server, its sample, snapshot and
    preprocessed folder built in-process, committed (`dvc commit`) and pushed; serialize not
    run as a stage. Also a copy of the workspace where the in-process serialize output is
    committed: the bytes and the `dvc.lock` that `dvc repro` would leave."""
    prefix, data = project[1:]
    root = project[0].parent / "built"
    shutil.copytree(project[0], root, symlinks=True)
    mp = pytest.MonkeyPatch()
    for k, v in CREDENTIALS.items():
        mp.setenv(k, v)
    try:
        from dataops.stages.pipeline import run_pipeline

        sh("dvc", "remote", "modify", "store", "endpointurl", s3_endpoint, cwd=root)
        sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "url", cwd=root)
        run_pipeline(parse_params(data), root, validate=False)
        reference = root.parent / "reference"
        shutil.copytree(root, reference, symlinks=True)
        sh("dvc", "commit", "-f", "-d", "-q", "serialize", cwd=reference)
        shutil.rmtree(root / "data" / "tfrecords")
        sh("dvc", "commit", "-f", "-d", "-q", "preprocess", cwd=root)
        sh("dvc", "push", "-q", cwd=root)
        yield root, reference, prefix, data
    finally:
        mp.undo()


@pytest.fixture
def aws(monkeypatch):
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)


@pytest.mark.slow
def test_shards_go_into_the_remote_and_a_fresh_clone_pulls_the_same_bytes(
    built, s3_endpoint, aws, tmp_path
):
    root, reference, prefix, data = built
    params = parse_params(data)
    before = _objects(s3_endpoint, prefix)
    shutil.copytree(reference / "data" / "tfrecords", root / "data" / "tfrecords")  # stale copy
    result = run_serialize_beam(
        params.serialize,
        params.dataset,
        root / "data" / "preprocessed",
        root / "data" / "tfrecords",
        THREADS_2,
        to_remote="store",
    )

    # The workspace holds no shard; dvc.lock is byte for byte what `dvc commit` writes for the
    # in-process output (deps, params and the output's md5/size/nfiles).
    assert not (root / "data" / "tfrecords").exists()
    assert (root / "dvc.lock").read_text() == (reference / "dvc.lock").read_text()
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["serialize"]["outs"][0]
    assert locked["md5"] == result.locked.md5 and locked["nfiles"] == result.locked.nfiles
    assert result.locked.nfiles == len(_digests(reference / "data" / "tfrecords"))
    new = _objects(s3_endpoint, prefix) - before
    assert len(new) == result.locked.nfiles + 1  # every file and the .dir manifest
    assert f"{prefix}/files/md5/{result.locked.md5[:2]}/{result.locked.md5[2:]}" in new

    # The workspace: the stage is up to date with its data missing (as after `dvc gc -w`).
    out = sh("dvc", "repro", "--allow-missing", "serialize", cwd=root)
    assert "Stage 'serialize' didn't change, skipping" in out
    assert "Everything is up to date." in sh("dvc", "push", cwd=root)

    # `dvc gc --cloud` keeps the output's objects (it fetches the .dir manifest to list them).
    sh("dvc", "gc", "-w", "-c", "-f", "-q", cwd=root)
    assert new <= _objects(s3_endpoint, prefix)

    # Again without the input in the workspace: read from the remote at the version dvc.lock
    # records; nothing new uploaded (content-addressed), the same entry recorded.
    shutil.rmtree(root / "data" / "preprocessed")
    run_serialize_beam(
        params.serialize,
        params.dataset,
        root / "data" / "preprocessed",
        root / "data" / "tfrecords",
        THREADS_2,
        to_remote="store",
    )
    assert _objects(s3_endpoint, prefix) - before == new
    assert (root / "dvc.lock").read_text() == (reference / "dvc.lock").read_text()
    assert not (root / "data" / "preprocessed").exists()

    # A fresh clone: repro skips the stage without data; pull brings the in-process bytes.
    assert git(root, "status", "--porcelain") == "M dvc.lock"  # the output stays git-ignored
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "built", cwd=root)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(root), str(clone), cwd=tmp_path)
    out = sh("dvc", "repro", "--allow-missing", "serialize", cwd=clone)
    assert "Stage 'serialize' didn't change, skipping" in out
    sh("dvc", "pull", "-q", "--with-deps", "serialize", cwd=clone)
    assert _digests(clone / "data" / "tfrecords") == _digests(reference / "data" / "tfrecords")
    status = sh("dvc", "status", "sample", "ingest", "preprocess", "serialize", cwd=clone)
    assert "Data and pipelines are up to date." in status

    # The next stage, where the data is needed (as the DAG runs it): pulled, then validated.
    sh("dvc", "repro", "--pull", "--single-item", "validate", cwd=root)
    assert _digests(root / "data" / "tfrecords") == _digests(reference / "data" / "tfrecords")
    validate = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["validate"]
    assert {d["path"]: d.get("md5") for d in validate["deps"]}["data/tfrecords"] == locked["md5"]


def test_the_output_must_be_a_stage_output(project):
    root = project[0]
    with pytest.raises(ConfigError) as e:
        plan_target(root / "data" / "elsewhere", "store")
    assert str(e.value) == (
        f"--to-remote: {root / 'data' / 'elsewhere'} is not an output of any stage"
        f" in {root}'s dvc.yaml files"
    )


def test_an_unknown_remote_is_named_with_the_known_ones(project):
    root = project[0]
    with pytest.raises(ConfigError, match=r"no DVC remote named 'nas' \(remotes: local, store\)"):
        plan_target(root / "data" / "tfrecords", "nas")


def test_a_remote_dvc_pull_would_not_read_is_refused(project):
    root = project[0]
    with pytest.raises(ConfigError) as e:
        plan_target(root / "data" / "tfrecords", "local")
    assert str(e.value) == (
        "--to-remote local: `dvc pull` fetches data/tfrecords from the default remote"
        " ('store'), not from 'local'"
    )


def test_a_remote_beam_cannot_write_is_refused(project):
    root = project[0]
    sh("dvc", "remote", "add", "-f", "nas", "ssh://nas/dvc", cwd=root)
    try:
        with pytest.raises(ConfigError) as e:
            plan_target(root / "data" / "tfrecords", "nas")
    finally:
        sh("dvc", "remote", "remove", "nas", cwd=root)
    assert str(e.value) == (
        "--to-remote nas: ssh://nas/dvc: Beam writes to s3://, gs:// or a local/shared path,"
        " not ssh://"
    )


def test_an_output_dvc_does_not_cache_is_refused(project):
    with pytest.raises(
        ConfigError, match=r"reports/validation.json of stage 'validate' has `cache: false`"
    ):
        plan_target(project[0] / "reports" / "validation.json", "store")


def test_objects_land_under_their_md5_once_and_whole(tmp_path):
    """A local (shared-disk) remote: each file under files/md5/<2>/<30>; an object already
    there is left as it is (its name is its content); no temporary file is left."""
    scratch = tmp_path / "scratch"
    (scratch / "index").mkdir(parents=True)
    (scratch / "a.tfrecord").write_bytes(b"shard bytes")
    (scratch / "index" / "a.idx").write_bytes(b"index bytes")
    objects = str(tmp_path / "remote" / "files" / "md5")
    entries = upload_files(scratch, objects)
    md5 = {
        rel: hashlib.md5(data).hexdigest()
        for rel, data in [("a.tfrecord", b"shard bytes"), ("index/a.idx", b"index bytes")]
    }
    assert entries == [
        ("a.tfrecord", md5["a.tfrecord"], 11),
        ("index/a.idx", md5["index/a.idx"], 11),
    ]
    assert not any(scratch.rglob("*.*"))  # uploaded files leave the worker's disk
    stored = {
        p.relative_to(objects).as_posix(): p.read_bytes()
        for p in Path(objects).rglob("*")
        if p.is_file()
    }
    assert stored == {
        f"{md5['a.tfrecord'][:2]}/{md5['a.tfrecord'][2:]}": b"shard bytes",
        f"{md5['index/a.idx'][:2]}/{md5['index/a.idx'][2:]}": b"index bytes",
    }
    (scratch / "again.tfrecord").write_bytes(b"shard bytes")
    target = Path(objects, md5["a.tfrecord"][:2], md5["a.tfrecord"][2:])
    before = target.stat().st_mtime_ns
    assert upload_files(scratch, objects) == [("again.tfrecord", md5["a.tfrecord"], 11)]
    assert target.stat().st_mtime_ns == before


def test_an_upload_interrupted_midway_leaves_no_object_and_a_rerun_converges(
    s3_endpoint, tmp_path, monkeypatch, aws
):
    """S3's writer commits what it was given when closed: an upload interrupted after its first
    MiB must not leave a truncated object under the content's md5 (every later run would take it
    as uploaded and `dvc pull` would fetch it); a truncated object already there (an older
    run's) is replaced by the next upload."""
    import shutil as _shutil

    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from dataops.beam import upload

    FileSystems.set_options(PipelineOptions([f"--s3_endpoint_url={s3_endpoint}"]))
    src = tmp_path / "shard.tfrecord"
    data = bytes(range(256)) * (3 << 12)  # 3 MiB
    src.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    prefix = f"interrupted-{tmp_path.name}"
    dest = f"s3://dvc/{prefix}/files/md5/{md5[:2]}/{md5[2:]}"
    copy = _shutil.copyfileobj

    def interrupted(f, g, length=0):
        g.write(f.read(1 << 20))
        raise KeyboardInterrupt

    monkeypatch.setattr(_shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        upload.put_object(src, dest)
    assert _objects(s3_endpoint, prefix) == set()  # nothing, not even the temporary object
    client = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())
    key = dest.removeprefix("s3://dvc/")
    client.put_object(Bucket="dvc", Key=key, Body=data[: 1 << 20])  # an older run's leftover
    monkeypatch.setattr(_shutil, "copyfileobj", copy)
    upload.put_object(src, dest)
    assert client.get_object(Bucket="dvc", Key=key)["Body"].read() == data
    assert _objects(s3_endpoint, prefix) == {key}


def test_a_dependency_missing_from_the_workspace_is_read_from_the_remote(project):
    """Not in the workspace: the version the producing stage's dvc.lock entry records."""
    root = project[0]
    target = plan_target(root / "data" / "tfrecords", "store")
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["preprocess"]["outs"][0]
    (inp,) = target.inputs
    assert (inp.def_path, inp.md5, inp.size, inp.nfiles) == (
        "data/preprocessed",
        lock["md5"],
        lock["size"],
        lock["nfiles"],
    )
    assert target.input_for(root / "data" / "preprocessed") == inp


def test_a_dependency_neither_in_the_workspace_nor_recorded_is_named(project, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(project[0], ws, symlinks=True)
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    del lock["stages"]["preprocess"]
    (ws / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    with pytest.raises(ConfigError) as e:
        plan_target(ws / "data" / "tfrecords", "store")
    assert str(e.value) == (
        "--to-remote: data/preprocessed, a dependency of stage 'serialize', is not in the"
        " workspace and no stage's dvc.lock entry records it as a folder to read from the remote"
        " (dvc pull it first)"
    )


def test_a_remote_input_missing_from_the_remote_is_named(tmp_path):
    inp = RemoteInput(str(tmp_path / "ws" / "pre"), "pre", "ab" + "0" * 30 + ".dir", 1, 1)
    target = RemoteTarget(
        root=str(tmp_path / "ws"),
        stage="serialize",
        out=str(tmp_path / "ws" / "out"),
        remote="store",
        url=str(tmp_path / "remote"),
        options=(),
        inputs=(inp,),
    )
    with pytest.raises(DatasetError) as e:
        input_files(target, inp)
    assert str(e.value) == (
        f"pre: not in the workspace, and remote 'store' has no {inp.md5}"
        f" ({tmp_path}/remote/files/md5/ab/{'0' * 30}.dir): dvc push it from where it was built"
    )


def test_a_busy_dvc_lock_fails_with_what_to_do_and_writes_nothing(project, tmp_path):
    """Another DVC process holds the repository lock when the driver records the stage: one
    line saying the output is uploaded and a rerun records it; dvc.lock untouched."""
    from dvc.repo import Repo

    root = project[0]
    target = RemoteTarget(
        root=str(root),
        stage="serialize",
        out=str(root / "data" / "tfrecords"),
        remote="store",
        url=str(tmp_path / "remote"),
        options=(),
    )
    lock_before = (root / "dvc.lock").read_bytes()
    with Repo(str(root)) as repo, repo.lock:
        with pytest.raises(DataopsError) as e:
            record(target, [("a.tfrecord", "0" * 32, 3)])
    assert str(e.value).startswith(
        f"{root}: another DVC process holds the repository lock, so the dvc.lock entry of stage"
        " 'serialize' was not written; the output is in remote 'store' ("
    )
    assert str(e.value).endswith(
        "run the same command again to record it (nothing is uploaded twice)"
    )
    assert (root / "dvc.lock").read_bytes() == lock_before


def test_under_dvc_repro_it_refuses_to_write_the_lock_itself(project, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "serialize")
    with pytest.raises(ConfigError) as e:
        plan_target(project[0] / "data" / "tfrecords", "store")
    assert str(e.value) == (
        "--to-remote: running as the command of DVC stage 'serialize'; --to-remote writes the"
        " stage's dvc.lock entry itself, run it directly, not under dvc repro"
    )


def test_the_cli_needs_the_beam_engine_for_to_remote(project):
    r = run_cli("serialize", "--to-remote", "store", cwd=project[0])
    assert r.returncode == 2
    assert "--to-remote needs --engine beam" in r.stderr
