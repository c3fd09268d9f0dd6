"""An object store the Beam engine cannot use ends the run in seconds with one line naming the
URL and the endpoint, exit 2, nothing written — not after Beam's minutes of retries with a
traceback: a closed port, a server that accepts and never answers, a missing bucket, no
credentials, a `--to-remote` remote whose endpoint is a closed port, a URL no filesystem reads.

The real CLI in a subprocess (Beam's DirectRunner, boto3, DVC), a real S3-compatible server
(moto's standalone server) and real sockets; each run is bounded by a subprocess timeout far
above the check's budget (2 tries × 5 s), so a run that hangs fails instead of stalling.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")

from dataops.beam.serialize import run_serialize_beam  # noqa: E402
from dataops.errors import ConfigError  # noqa: E402
from tests.support.project import VENV_BIN, make_project, repo_params, sh, tool_env  # noqa: E402
from tests.support.s3 import CREDENTIALS, moto_server  # noqa: E402

BOUND = 60
"""Seconds a failing run may take before the test calls it hung (the check needs ~10 at most)."""
AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()):
    """`dataops ARGS` as a user runs it, with `env` added and the variables `drop` removed."""
    full = {**tool_env(**AWS), **(env or {})}
    for name in drop:
        full.pop(name, None)
    return subprocess.run(
        [str(VENV_BIN / "dataops"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full,
        timeout=BOUND,
    )


def _closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An endpoint that accepts every connection and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # closed: the test is over
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        server.close()
        for conn in held:
            conn.close()
        thread.join(5)


@pytest.fixture
def web_server() -> Iterator[str]:
    """A plain HTTP server (not S3) that answers 404 to every request."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 — http.server's naming
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server with a bucket `data` (and none called `nope`)."""
    with moto_server() as url:
        boto3.client("s3", endpoint_url=url, **CREDENTIALS).create_bucket(Bucket="data")
        yield url


@pytest.fixture
def csv_project(tmp_path) -> Path:
    """A folder whose params.yaml ingests one tiny CSV (the cheapest Beam run of the CLI)."""
    (tmp_path / "t.csv").write_text("id,x\n1,0.5\n2,1.5\n")
    data = repo_params()
    data["ingest"] = {"sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def _ingest(project: Path, options: str, **kw) -> subprocess.CompletedProcess:
    return _cli(
        "ingest", "--out", "snap", "--engine", "beam", "--beam-options", options, cwd=project, **kw
    )


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    """The run failed with exactly one line on stderr (no traceback, no Beam log); its text."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0].removeprefix("error: ")


def _nothing_written(project: Path) -> None:
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml", "t.csv"]


def test_a_closed_port_fails_in_one_line(csv_project):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    r = _ingest(csv_project, f"--s3_endpoint_url={endpoint} --temp_location=s3://data/tmp")
    assert r.returncode == 2
    assert _one_error_line(r) == (
        f"--temp_location s3://data/tmp: cannot connect to the S3 endpoint {endpoint} (connection refused)"
    )
    _nothing_written(csv_project)


@pytest.mark.slow
def test_an_endpoint_that_never_answers_fails_after_the_read_timeout(csv_project, silent_server):
    r = _ingest(csv_project, f"--s3_endpoint_url={silent_server} --temp_location=s3://data/tmp")
    assert r.returncode == 2
    assert _one_error_line(r) == (
        f"--temp_location s3://data/tmp: the S3 endpoint {silent_server} accepted the connection"
        " but did not answer within 5 s (2 tries); is it an S3 endpoint?"
    )
    _nothing_written(csv_project)


def test_an_endpoint_that_is_no_s3_server_is_not_taken_for_a_missing_bucket(
    csv_project, web_server
):
    r = _ingest(csv_project, f"--s3_endpoint_url={web_server} --temp_location=s3://data/tmp")
    assert r.returncode == 2
    assert _one_error_line(r) == (
        f"--temp_location s3://data/tmp: the S3 endpoint {web_server} answered 404 without any"
        " x-amz-* header; is it an S3 endpoint?"
    )
    _nothing_written(csv_project)


def test_a_missing_bucket_is_named_with_its_endpoint(csv_project, s3_endpoint):
    r = _ingest(csv_project, f"--s3_endpoint_url={s3_endpoint} --temp_location=s3://nope/tmp")
    assert r.returncode == 2
    assert _one_error_line(r) == (
        f"--temp_location s3://nope/tmp: bucket 'nope' does not exist at the S3 endpoint {s3_endpoint}"
    )
    _nothing_written(csv_project)


def test_missing_credentials_are_said_not_retried(csv_project, s3_endpoint, tmp_path):
    none = str(tmp_path / "absent")
    r = _ingest(
        csv_project,
        f"--s3_endpoint_url={s3_endpoint} --temp_location=s3://data/tmp",
        env={
            "AWS_SHARED_CREDENTIALS_FILE": none,
            "AWS_CONFIG_FILE": none,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        drop=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"),
    )
    assert r.returncode == 2
    assert _one_error_line(r) == (
        "--temp_location s3://data/tmp: no S3 credentials: set AWS_ACCESS_KEY_ID and"
        " AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or --s3_access_key_id and --s3_secret_access_key"
    )
    _nothing_written(csv_project)


def test_rejected_credentials_are_said_not_retried(csv_project, monkeypatch):
    """A server that checks credentials (moto with its IAM auth on) refuses unknown keys: 403."""
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # read by the moto server started next
    with moto_server() as endpoint:
        r = _ingest(csv_project, f"--s3_endpoint_url={endpoint} --temp_location=s3://data/tmp")
    assert r.returncode == 2
    assert _one_error_line(r) == (
        f"--temp_location s3://data/tmp: the S3 endpoint {endpoint} refuses access to bucket"
        " 'data' (403: the credentials are wrong or may not use it)"
    )
    _nothing_written(csv_project)


def test_a_url_without_a_filesystem_is_named(csv_project):
    """gs:// without Beam's gcp extra (as here), or a scheme Beam does not know."""
    if not _has_gcs():
        r = _ingest(csv_project, "--temp_location=gs://bucket/tmp")
        assert r.returncode == 2
        assert _one_error_line(r) == (
            "--temp_location gs://bucket/tmp: Beam has no filesystem for gs:// here"
            " (pip install 'apache-beam[gcp]')"
        )
    r = _ingest(csv_project, "--temp_location=nfs://host/tmp")
    assert r.returncode == 2
    assert (
        _one_error_line(r)
        == "--temp_location nfs://host/tmp: Beam has no filesystem for nfs:// here"
    )
    _nothing_written(csv_project)


def _has_gcs() -> bool:
    try:
        import google.cloud.storage  # noqa: F401
    except ImportError:
        return False
    return True


def test_an_input_on_a_closed_port_fails_at_its_first_read(tmp_path, monkeypatch):
    """The Python API: a URL the driver reads is checked when first touched, before anything
    is written (here the preprocessed folder's state.json)."""
    from tests.support.project import small_params

    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    params = small_params(60)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError) as e:
        run_serialize_beam(
            params.serialize,
            params.dataset,
            "s3://data/pre",
            tmp_path / "out",
            f"--s3_endpoint_url={endpoint}",
        )
    assert str(e.value) == (
        f"s3://data/pre/state.json: cannot connect to the S3 endpoint {endpoint} (connection refused)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_to_remote_on_a_closed_port_fails_before_any_work(tmp_path):
    """`--to-remote` to a DVC remote whose `endpointurl` nothing listens on: one line naming the
    remote, its URL and the endpoint; no shard, no dvc.lock change."""
    root = make_project(tmp_path / "ws", num_examples=None)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    sh("dvc", "remote", "add", "-f", "-d", "store", "s3://dvc/cache", cwd=root)
    sh("dvc", "remote", "modify", "store", "endpointurl", endpoint, cwd=root)
    lock = (root / "dvc.lock").read_bytes()
    r = _cli("serialize", "--engine", "beam", "--to-remote", "store", cwd=root)
    assert r.returncode == 2
    assert _one_error_line(r) == (
        f"--to-remote store: s3://dvc/cache: cannot connect to the S3 endpoint {endpoint} (connection refused)"
    )
    assert not (root / "data" / "tfrecords").exists()
    assert (root / "dvc.lock").read_bytes() == lock


def test_use_options_checks_the_runs_urls_before_any_work(tmp_path, monkeypatch):
    """A driver that names its inputs and outputs to `use_options` learns at once that one of
    them is unreachable (a local path among them is not asked about)."""
    from dataops.beam.io import use_options

    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError) as e:
        use_options([f"--s3_endpoint_url={endpoint}"], tmp_path / "snapshot", "s3://data/out")
    assert str(e.value) == (
        f"s3://data/out: cannot connect to the S3 endpoint {endpoint} (connection refused)"
    )
