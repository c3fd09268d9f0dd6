"""Object-store URLs on the command line (`dataops.cli.paths`): preprocess and serialize on the
Beam engine read and write `s3://` folders, byte for byte the in-process run; everywhere else a
URL is refused in one `error:` line, exit 2, before anything is written."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from dataops.cli.paths import is_url, location
from tests.support.project import REPO, run_cli, small_params_data
from tests.support.s3 import CREDENTIALS, moto_server

LOCAL = {"DATAOPS_ENGINE": "local", "DATAOPS_BEAM_OPTIONS": ""}
READS = "reads local paths only; copy it to this machine and give its path"
WRITES = "writes local paths only; give a local path, then copy the result to the store"
NEED_BEAM = "object-store paths need --engine beam"


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://data/snap", "s3://data/snap"),
        ("gs://b/pre/", "gs://b/pre/"),
        ("data/snapshot", Path("data/snapshot")),
        ("C:\\data\\snap", Path("C:\\data\\snap")),  # a Windows path is a path
        ("C://data/snap", Path("C://data/snap")),  # a one-letter scheme is a drive
        ("./s3://x", Path("./s3://x")),  # not at the start: a (strange) local path
    ],
)
def test_a_url_is_kept_whole_and_anything_else_is_a_path(value, expected):
    got = location(value)
    assert got == expected
    assert type(got) is type(expected)
    assert is_url(got) == isinstance(expected, str)


# (environment, command line, the one error line). The environment sets the engine with
# $DATAOPS_ENGINE where the flag is absent: the in-process engine, or Beam where ingest and
# the always-local options must refuse a URL whatever the engine.
REFUSED = [
    (LOCAL, ("preprocess", "--snapshot", "s3://b/snap"), f"--snapshot s3://b/snap: {NEED_BEAM}"),
    (LOCAL, ("preprocess", "--out", "gs://b/pre"), f"--out gs://b/pre: {NEED_BEAM}"),
    (
        LOCAL,
        ("serialize", "--preprocessed", "s3://b/pre", "--to-remote", "store"),
        f"--preprocessed s3://b/pre: {NEED_BEAM}",
    ),
    (LOCAL, ("serialize", "--out", "s3://b/ds"), f"--out s3://b/ds: {NEED_BEAM}"),
    (
        LOCAL,
        ("ingest", "--engine", "beam", "--out", "s3://data/snap"),
        f"--out s3://data/snap: dataops ingest {WRITES}",
    ),
    (
        {"DATAOPS_ENGINE": "beam"},
        ("ingest", "--out", "s3://data/snap"),
        f"--out s3://data/snap: dataops ingest {WRITES}",
    ),
    (
        {"DATAOPS_ENGINE": "beam"},
        ("preprocess", "-p", "s3://b/params.yaml"),
        f"--params s3://b/params.yaml: dataops preprocess {READS}",
    ),
    (LOCAL, ("sample", "--out", "s3://b/sample"), f"--out s3://b/sample: dataops sample {WRITES}"),
    (
        LOCAL,
        ("validate", "--dataset", "s3://b/ds"),
        f"--dataset s3://b/ds: dataops validate {READS}",
    ),
    (
        LOCAL,
        ("validate", "--report", "gs://b/report.json"),
        f"--report gs://b/report.json: dataops validate {WRITES}",
    ),
    (LOCAL, ("verify", "s3://b/ds"), f"DIRECTORY s3://b/ds: dataops verify {READS}"),
    (
        LOCAL,
        ("export", "data/tfrecords", "-f", "parquet", "-o", "s3://b/x"),
        f"--out s3://b/x: dataops export {WRITES}",
    ),
    (
        LOCAL,
        ("init", "--source", "data/a.csv", "--source", "s3://b/a.csv"),
        f"--source s3://b/a.csv: dataops init {READS}",
    ),
]


@pytest.mark.parametrize(("env", "args", "line"), REFUSED, ids=[" ".join(a) for _, a, _ in REFUSED])
def test_a_url_where_none_is_read_or_written_is_one_line_and_nothing_is_created(
    tmp_path, env, args, line
):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    r = run_cli(*args, cwd=tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert _errors(r.stderr) == [f"error: {line}"]
    assert r.stdout == ""
    # no `s3:` folder, no `.incomplete-` folder or lock, not even a run record
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_a_windows_style_path_stays_a_local_path(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    r = run_cli(
        "preprocess", "--snapshot", "C:\\data\\snap", "--out", "pre", cwd=tmp_path, env=LOCAL
    )
    assert r.returncode == 1, r.stderr
    (line,) = _errors(r.stderr)  # read as the local folder `C:\data\snap`, not refused
    assert line.startswith("error: C:\\data\\snap/manifest.json: not found"), line
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


@pytest.mark.slow
def test_preprocess_and_serialize_on_beam_read_and_write_s3_urls(tmp_path):
    """The snapshot on S3 (a local moto server) → `dataops preprocess --engine beam` → S3 →
    `dataops serialize` with the engine and options from the environment → S3: the objects
    are the in-process run's files of the same project, byte for byte, and nothing else is
    written in the working directory (no `s3:` folder)."""
    pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")
    from dataops.config import parse_params
    from dataops.stages.pipeline import run_pipeline

    data = small_params_data(60, preprocess={"batch_rows": 16})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    run_pipeline(parse_params(data), tmp_path, validate=False)  # the in-process reference
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with moto_server() as url:
        s3 = boto3.client("s3", endpoint_url=url, **CREDENTIALS)
        s3.create_bucket(Bucket="data")
        for f in sorted((tmp_path / "data" / "snapshot").iterdir()):
            s3.upload_file(str(f), "data", f"snap/{f.name}")
        options = (
            f"--s3_endpoint_url={url} --s3_access_key_id=test --s3_secret_access_key=test"
            " --s3_region_name=us-east-1 --temp_location=s3://data/tmp"
            " --direct_num_workers=2 --direct_running_mode=multi_threading"
        )
        r = run_cli(
            "preprocess",
            "--engine",
            "beam",
            "--beam-options",
            options,
            "--snapshot",
            "s3://data/snap",
            "--out",
            "s3://data/pre",
            cwd=tmp_path,
            env={"DATAOPS_ENGINE": "local", "DATAOPS_BEAM_OPTIONS": ""},
        )
        assert r.returncode == 0, r.stderr
        r = run_cli(
            "serialize",
            "--preprocessed",
            "s3://data/pre",
            "--out",
            "s3://data/ds",
            cwd=tmp_path,
            env={"DATAOPS_ENGINE": "beam", "DATAOPS_BEAM_OPTIONS": options},
        )
        assert r.returncode == 0, r.stderr

        def objects(prefix: str) -> dict[str, str]:
            listing = s3.list_objects_v2(Bucket="data", Prefix=prefix).get("Contents", [])
            return {
                o["Key"][len(prefix) :]: hashlib.sha256(
                    s3.get_object(Bucket="data", Key=o["Key"])["Body"].read()
                ).hexdigest()
                for o in listing
            }

        assert objects("pre/") == _digests(tmp_path / "data" / "preprocessed")
        assert objects("ds/") == _digests(tmp_path / "data" / "tfrecords")
        assert objects("tmp/") == {}
    new = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} - set(before)
    assert {p.parts[0] for p in new} <= {"reports"}, new  # the run records (reports/runs/)
