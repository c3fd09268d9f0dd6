"""Helpers of the Airflow tests: a temporary clone of the project, `dag.test()` in a subprocess, git queries."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from tests.support.project import REPO, VENV_BIN, git, small_params_data, tool_env


def make_clone(dest: Path, num_examples: int = 120) -> Path:
    """A git repo at `dest` holding the project's tracked files, small params, and its own DVC remote.

    Like `git clone` of the checkout (the tracked files as they are in the working tree), with
    `params.yaml` set to `num_examples` sample rows and the DVC remote `local` at `dest/../remote`.
    """
    dest.mkdir(parents=True)
    for rel in git(REPO, "ls-files", "-z").split("\0"):
        src = REPO / rel
        if not rel or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for d in ("dags", "plugins", "dataops"):  # the code under test, even before it is committed
        shutil.copytree(
            REPO / d, dest / d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    (dest / "params.yaml").write_text(
        yaml.safe_dump(small_params_data(num_examples), sort_keys=False)
    )
    remote = dest.parent / "remote"
    remote.mkdir(exist_ok=True)
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config").write_text(
        f"[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = {remote}\n"
    )
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "test")
    git(dest, "config", "user.email", "test@example.com")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "clone")
    return dest


def airflow_env(home: Path, workspace: Path, **extra: str) -> dict[str, str]:
    return tool_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(workspace / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(workspace / "plugins"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        DATAOPS_PROJECT_DIR=str(workspace),
        **{"DATAOPS_SCHEDULE": "none", **extra},
    )


def airflow_db(home: Path, workspace: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        env=airflow_env(home, workspace),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


_DAGTEST = textwrap.dedent(
    """
    import importlib.util, json, sys
    from sqlalchemy import select
    spec = importlib.util.spec_from_file_location("dataset_pipeline", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    conf = json.loads(sys.argv[2])
    dr = mod.DAG.test(run_conf=conf or None)
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    with create_session() as s:
        events = [e.extra for e in s.scalars(select(AssetEvent).order_by(AssetEvent.id))]
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    print("RESULT " + json.dumps({"state": str(dr.state), "tasks": states, "events": events}))
    """
)


def dag_test(
    home: Path, workspace: Path, conf: dict | None = None, timeout: int = 600
) -> tuple[dict, str]:
    """Run `DAG.test()` of the workspace's DAG file in a subprocess; returns (result, full output)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _DAGTEST,
            str(workspace / "dags" / "dataset_pipeline.py"),
            json.dumps(conf or {}),
        ],
        env=airflow_env(home, workspace),
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, out[-6000:]
    return json.loads(lines[-1][len("RESULT ") :]), out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def http(
    method: str,
    url: str,
    token: str | None = None,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
    follow: bool = True,
) -> tuple[int, dict | str, dict[str, str]]:
    """(status, JSON or text, headers by lower-case name) of one request; redirects followed only when `follow`."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(*([] if follow else [NoRedirect]))
    req = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body is not None else None
    )
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with opener.open(req, timeout=60) as resp:
            text, status, hdrs = resp.read().decode(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        text, status, hdrs = err.read().decode(), err.code, err.headers
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    try:
        return status, json.loads(text), hdrs
    except json.JSONDecodeError:
        return status, text, hdrs


def raw_get(port: int, path: str, token: str | None = None) -> tuple[int, str, dict[str, str]]:
    """A GET with the path sent exactly as given (no client-side normalisation of `..` or `%2f`)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        if token:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        resp = conn.getresponse()
        return (
            resp.status,
            resp.read().decode(errors="replace"),
            {k.lower(): v for k, v in resp.getheaders()},
        )
    finally:
        conn.close()


def wait_for(what: str, fn, timeout: float, every: float = 2.0, log: Path | None = None):
    """Poll `fn` until it returns something truthy; AssertionError with the log's tail on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group `proc` leads (started with start_new_session), SIGKILL what survives."""
    import signal
    import time

    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass

    def gone() -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False

    deadline = time.monotonic() + 30
    while not gone() and time.monotonic() < deadline:
        time.sleep(1)
    if not gone():
        os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 15  # killed processes may take a moment to be reaped
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.5)
    assert gone(), "processes of the Airflow process group survived SIGTERM and SIGKILL"


def start_api_server(
    home: Path, env: dict[str, str], port: int, cwd: Path
) -> tuple[subprocess.Popen, Path]:
    """`airflow api-server` on `port` in its own process group, once its health endpoint answers."""
    import urllib.request

    log = home / "api-server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"airflow api-server exited:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5
            ):
                return True
        except OSError:
            return False

    try:
        wait_for("airflow api-server", healthy, 240, log=log)
    except BaseException:
        stop_process_group(proc)
        raise
    return proc, log
