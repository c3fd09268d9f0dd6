"""The Datasets page and API cannot be turned against their users (issue 14).

A hostile repository — tags, commit messages, params.yaml, validation reports and DVC objects
full of script payloads, foreign tags, an option-injection tag, a DVC object id that climbs out
of the cache — is served by a real `airflow api-server`; each attack is made and its refusal
asserted: in headless Chromium (no dialog, no injected element, the payload shown as text), over
REST with role-less, forged, unsigned and expired tokens, with traversal in every path
parameter, and with oversized and bidi trigger params.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import yaml

from dataops.errors import DatasetError
from dataops.release.versions import list_versions, version_detail
from tests.support.airflow import (
    CHROME_ARGS,
    CHROMIUM,
    free_port,
    http,
    raw_get,
    start_api_server,
    stop_process_group,
)
from tests.support.project import REPO, VENV_BIN, git, tool_env

ARTIFACTS = REPO / "test-artifacts"
MARK = "data-xss"
P = f"\"'><img src=x onerror=alert(1) {MARK}=1><script>alert(2)</script>"  # one value, every field
TAG_P = f'x"><svg/{MARK}/onload=alert(3)>'  # a dataset name that is a valid git ref component
FP1 = "a" * 64
FP2 = "b" * 64
GIT_ID = ["-c", "user.name=t", "-c", "user.email=t@t"]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - DVC's object ids


def _put_object(repo: Path, data: bytes, suffix: str = "") -> str:
    md5 = _md5(data)
    path = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / (md5[2:] + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5


def _metadata(fingerprint: str) -> dict:
    """metadata.json with a payload in every value the page shows."""
    return {
        "name": "sample",
        "fingerprint": fingerprint,
        "compression": P,
        "features": [
            {"name": P, "kind": P, "dtype": P, "shape": [P, 2], "encoding": P, "num_classes": P},
            {
                "name": "label",
                "kind": "tensor",
                "dtype": "int64",
                "shape": [],
                "encoding": "none",
                "num_classes": 4,
            },
        ],
        "splits": [
            {
                "name": P,
                "num_examples": P,
                "num_bytes": P,
                "shards": [{"file": P, "num_examples": P, "num_bytes": P, "sha256": P}],
            },
            {
                "name": "train",
                "num_examples": 5,
                "num_bytes": 4096,
                "shards": [
                    {
                        "file": "sample-train.tfrecord-00000-of-00001",
                        "num_examples": 5,
                        "num_bytes": 4096,
                        "sha256": "c" * 64,
                    }
                ],
            },
        ],
    }


def _commit_version(
    repo: Path, *, fingerprint: str, params: dict, lock_md5: str | None = None
) -> str:
    """Commit params.yaml, dvc.lock and reports/validation.json of one version; returns the commit."""
    meta = json.dumps(_metadata(fingerprint)).encode()
    listing = json.dumps([{"md5": _put_object(repo, meta), "relpath": "metadata.json"}]).encode()
    dir_md5 = lock_md5 or _put_object(repo, listing, ".dir") + ".dir"
    lock = {
        "schema": "2.0",
        "stages": {"serialize": {"outs": [{"path": "data/tfrecords", "md5": dir_md5}]}},
    }
    report = {
        "ok": True,
        "fingerprint": fingerprint,
        "num_examples": {"train": 5, P: P},
        "num_bytes": {"train": P, "validation": 100},
        "violations": [P],
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports" / "validation.json").write_text(json.dumps(report))
    git(repo, "add", "-A")
    git(repo, *GIT_ID, "commit", "-q", "-m", f"commit {P}", "-m", f"body {P}")
    return git(repo, "rev-parse", "HEAD")


def _trailers(dataset: str, version: str, fingerprint: str) -> str:
    return f"Dataops-Dataset: {dataset}\nDataops-Version: {version}\nDataops-Fingerprint: {fingerprint}"


def _tag(repo: Path, name: str, message: str, commit: str = "HEAD") -> None:
    git(repo, *GIT_ID, "tag", "-a", name, "-m", message, commit)


def _legacy_message(dataset: str, version: str, fp: str) -> str:
    """The annotation dataops.release.publish wrote before the trailers (subject, blank line, body)."""
    return (
        f"Publish {dataset} {version}: train=5 examples, fingerprint {fp[:12]}\n\n"
        f"dataset: {dataset}\nversion: {version}\nfingerprint: {fp}\nschema: {'d' * 16}\n"
        f"examples: train=5\nbytes: 4096\nfiles: params.yaml, dvc.lock, reports/validation.json"
    )


def _raw_tag(repo: Path, refname: str, commit: str, message: str) -> None:
    """An annotated tag whose ref `git tag` would refuse to create (an option-like name)."""
    name = refname.removeprefix("refs/tags/")
    obj = (
        f"object {commit}\ntype commit\ntag {name}\ntagger t <t@t> 1700000000 +0000\n\n{message}\n"
    )
    oid = (
        subprocess.run(
            ["git", "hash-object", "-t", "tag", "-w", "--stdin"],
            cwd=repo,
            input=obj.encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(repo, "update-ref", refname, oid)


VERSIONS = {  # the versions the hostile repository holds, by tag
    "sample-v1.0",
    "sample-v1.1",  # same fingerprint as v1.0
    "sample-v2.0",  # the earlier annotation format
    "team/sample-v1.0",  # a `/` in the dataset name
    f"{TAG_P}-v1.0",
    "--output=o-v1.0",  # listed, and harmless: no git call sees it as an option
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("sec") / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    base = {P: P, "sample": {"num_examples": 5, "seed": P}, "serialize": {"compression": "none"}}
    c1 = _commit_version(repo, fingerprint=FP1, params=base)
    _tag(repo, "sample-v1.0", f"Publish {P}\n\n{_trailers('sample', 'v1.0', FP1)}")
    c2 = _commit_version(repo, fingerprint=FP1, params={**base, "serialize": {"compression": P}})
    _tag(repo, "sample-v1.1", f"Publish again\n\n{_trailers('sample', 'v1.1', FP1)}")
    c3 = _commit_version(repo, fingerprint=FP2, params=base)
    _tag(repo, "sample-v2.0", _legacy_message("sample", "v2.0", FP2))
    _tag(repo, "team/sample-v1.0", f"Publish\n\n{_trailers('team/sample', 'v1.0', FP2)}")
    _tag(repo, f"{TAG_P}-v1.0", f"Publish {P}\n\n{_trailers(TAG_P, 'v1.0', FP2)}")
    _raw_tag(
        repo, "refs/tags/--output=o-v1.0", c3, f"Publish\n\n{_trailers('--output=o', 'v1.0', FP2)}"
    )
    # a DVC object id that climbs out of the cache: the version lists, its metadata does not resolve
    secret = repo.parent / "secret.dir"
    secret.write_text(json.dumps([{"md5": "../../../../secret", "relpath": "metadata.json"}]))
    c4 = _commit_version(repo, fingerprint=FP2, params=base, lock_md5="../../../../../secret.dir")
    _tag(repo, "climb-v1.0", f"Publish\n\n{_trailers('climb', 'v1.0', FP2)}", c4)
    # foreign refs that look like versions
    git(repo, "tag", "sample-v9.0", c1)  # lightweight
    _tag(repo, "sample-v8.0", "a release, no trailers", c1)
    _tag(repo, "other-v1.0", f"Copied\n\n{_trailers('sample', 'v7.0', FP1)}", c1)  # name disagrees
    _tag(
        repo,
        "sample-v7.0",
        f"Two datasets\n\n{_trailers('sample', 'v7.0', FP1)}\nDataops-Dataset: x",
        c2,
    )
    _tag(repo, "sample-v6.0", f"Bad fingerprint\n\n{_trailers('sample', 'v6.0', 'z' * 64)}", c2)
    _tag(repo, "sample-v5.0", _legacy_message("sample", "v5.0", FP2) + "\nextra: line", c3)
    _raw_tag(repo, "refs/tags/sample-v4.0", c3, f"Renamed\n\n{_trailers('sample', 'v3.0', FP2)}")
    # HEAD: the project's own DAG inputs, so the DAG parses in this workspace
    for rel in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / rel, repo / rel)
    git(repo, "add", "-A")
    git(repo, *GIT_ID, "commit", "-q", "-m", "project files")
    return repo


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}


# --- without a server --------------------------------------------------------------------------


def test_only_this_projects_tags_are_versions(hostile):
    assert {v.tag for v in list_versions(hostile)} == VERSIONS | {"climb-v1.0"}
    assert [v.tag for v in list_versions(hostile, "team/sample")] == ["team/sample-v1.0"]


def test_untrusted_numbers_reach_the_page_as_numbers_or_nothing(hostile):
    v = {v.tag: v for v in list_versions(hostile)}["sample-v1.0"]
    assert v.num_examples == {"train": 5} and v.num_bytes == 100
    d = version_detail(hostile, "sample-v1.0")
    bad, good = d["splits"]
    assert bad["num_examples"] is None and bad["num_bytes"] is None
    assert bad["shards"][0]["num_bytes"] is None and bad["shards"][0]["sha256"] is None
    assert good["num_bytes"] == 4096 and d["features"][0]["shape"] == [None, 2]
    assert d["features"][0]["num_classes"] is None


def test_duplicates_params_diff_and_load_snippet(hostile):
    d = version_detail(hostile, "sample-v1.1")
    assert d["duplicate_of"] == "sample-v1.0" and d["previous"] == "sample-v1.0"
    assert d["params_changes"] == [{"key": "serialize.compression", "old": "none", "new": P}]
    assert 'dataops.load("sample-v1.1", ' in d["load_snippet"]
    assert version_detail(hostile, "sample-v1.0")["duplicate_of"] is None


def test_option_injection_tag_writes_no_file(hostile):
    before = _files(hostile)
    list_versions(hostile)
    assert version_detail(hostile, "--output=o-v1.0")["fingerprint"] == FP2
    assert _files(hostile) == before  # git runs in the workspace: `--output=o-v1.0` would be there


def test_a_dvc_object_id_cannot_leave_the_cache(hostile):
    d = version_detail(hostile, "climb-v1.0")
    assert d["metadata_available"] is False and "dvc fetch" in d["metadata_note"]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("../../etc/passwd", "is not a valid tag name"),
        ("sample-v1.0:params.yaml", "is not a valid tag name"),
        ("sample-v9.0", "no published version 'sample-v9.0'"),
        ("HEAD", "no published version 'HEAD'"),
    ],
)
def test_errors_name_the_tag_not_the_workspace(hostile, tag, message):
    with pytest.raises(DatasetError, match=message) as err:
        version_detail(hostile, tag)
    assert str(hostile) not in str(err.value) and "/tmp" not in str(err.value)


def test_run_links_are_escaped_and_encoded(hostile):
    from dataops.airflow.page import render_page

    status, html = render_page(hostile, "sample-v1.0", "dataset_pipeline", {"sample-v1.0": P})
    assert status == 200 and f"<img src=x onerror=alert(1) {MARK}" not in html
    assert 'href="../dags/dataset_pipeline/runs/%22%27%3E%3Cimg%20src%3Dx%20' in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;</a>" in html


def test_the_plugin_asks_about_the_pipeline_dag():
    tree = ast.parse((REPO / "dags" / "dataset_pipeline.py").read_text())
    dag_id = next(
        n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "DAG_ID" for t in n.targets)
    )
    plugin = ast.parse((REPO / "plugins" / "datasets_plugin.py").read_text())
    assert dag_id in {
        n.value.value
        for n in plugin.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "DAG_ID" for t in n.targets)
    }


# --- against a real `airflow api-server` -------------------------------------------------------

JWT_SECRET = "test-secret-" + "k" * 64


@pytest.fixture(scope="module")
def server(hostile, tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    home, cwd = root / "home", root / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = tool_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer,norole:",
        AIRFLOW__API_AUTH__JWT_SECRET=JWT_SECRET,
        AIRFLOW__API__EXPOSE_CONFIG="False",
        DATAOPS_PROJECT_DIR=str(hostile),
        DATAOPS_SCHEDULE="none",
        PYTHONPATH=str(REPO),
    )
    for cmd in (["db", "migrate"], ["dags", "reserialize"]):
        proc = subprocess.run(
            [str(VENV_BIN / "airflow"), *cmd],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    port = free_port()
    proc, log = start_api_server(home, env, port, cwd)
    try:
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        url = f"http://127.0.0.1:{port}"
        tokens = {}
        for user in ("admin", "viewer", "norole"):
            status, body, _ = http(
                "POST", f"{url}/auth/token", body={"username": user, "password": passwords[user]}
            )
            assert status in (200, 201), (user, body)
            tokens[user] = body["access_token"]
        files_before = _files(hostile)
        yield {
            "url": url,
            "port": port,
            "tokens": tokens,
            "passwords": passwords,
            "log": log,
            "cwd": cwd,
        }
        assert _files(hostile) == files_before, "serving the hostile repository changed its files"
        assert list(cwd.iterdir()) == [], "a request wrote a file in the API server's directory"
    finally:
        stop_process_group(proc)


def _forged(token: str, key: str | None, **claims) -> str:
    import jwt

    header = jwt.get_unverified_header(token)
    body = {**jwt.decode(token, options={"verify_signature": False}), **claims}
    if key is None:  # alg=none, unsigned
        return jwt.encode(body, None, algorithm="none", headers={"kid": header.get("kid")})
    return jwt.encode(body, key, algorithm=header["alg"], headers={"kid": header.get("kid")})


PLUGIN_GETS = ["/dataops/api/versions", "/dataops/api/versions/sample-v1.0", "/dataops/datasets"]


@pytest.mark.slow
def test_every_token_gets_from_the_plugin_what_it_gets_from_airflow(server):
    url, admin = server["url"], server["tokens"]["admin"]
    now = int(time.time())
    tokens = {
        "admin": admin,
        "viewer": server["tokens"]["viewer"],
        "no role (a user without one)": server["tokens"]["norole"],
        "no role (forged with the api's secret)": _forged(
            admin, JWT_SECRET, role=None, sub="ghost"
        ),
        "wrong key": _forged(admin, "not-the-secret-" + "x" * 64),
        "alg=none": _forged(admin, None),
        "expired": _forged(admin, JWT_SECRET, exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "garbage": "not.a.token",
    }
    for name, token in tokens.items():
        core = {http("GET", f"{url}{p}", token)[0] for p in ("/api/v2/dags", "/api/v2/assets")}
        allowed = name in ("admin", "viewer")
        assert core == {200} if allowed else core <= {401, 403}, (name, core)
        for path in PLUGIN_GETS:
            status, body, headers = http("GET", f"{url}{path}", token, follow=False)
            if allowed:
                assert status == 200, (name, path, body)
            elif path.endswith("/datasets") and core == {401}:  # a browser: to the login
                assert status == 303 and headers["location"].startswith("/auth/login?next="), name
            else:
                assert status in core, (name, path, status, core, body)
                assert "sample-v1.0" not in str(body), (name, path)
            assert headers.get("content-security-policy", "").startswith("default-src 'self'"), path
    # without any credential: the API says 401, the page sends the browser to Airflow's login
    assert http("GET", f"{url}/dataops/api/versions")[0] == 401
    status, _, headers = http("GET", f"{url}/dataops/datasets", follow=False)
    assert status == 303 and headers["location"].startswith("/auth/login?next=")
    status, body, _ = http(
        "GET", f"{url}/dataops/datasets", server["tokens"]["norole"], follow=False
    )
    assert status == 403 and "viewer" in body


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    ["/dataops/docs", "/dataops/openapi.json", "/dataops/redoc", "/dataops/docs/oauth2-redirect"],
)
def test_docs_endpoints_are_off(server, path):
    for token in (None, server["tokens"]["admin"]):
        status, body, _ = http("GET", f"{server['url']}{path}", token)
        assert status == 404 and "openapi" not in str(body).lower(), (path, status)


TRAVERSALS = [
    "/dataops/api/versions/../../../../etc/passwd",
    "/dataops/api/versions/..%2F..%2F..%2Fetc%2Fpasswd",
    "/dataops/api/versions/%2e%2e/%2e%2e/params.yaml",
    "/dataops/api/versions/sample-v1.0:params.yaml",
    "/dataops/api/versions/sample-v1.0%3A..%2F..%2Fparams.yaml",
    "/dataops/api/versions/HEAD",
    "/dataops/api/versions/refs%2Fheads%2Fmain",
    "/dataops/api/versions/--output=x-v1.0",
    "/dataops/airflow/static/..%2F..%2Fdataops%2Fversions.py",
    "/dataops/airflow/static/../../plugins/datasets_plugin.py",
    "/dataops/airflow/static/%2e%2e%2fairflow_page.py",
    "/dataops/airflow/static/templates%2Fdatasets.html",
    "/dataops/datasets?version=..%2F..%2Fetc%2Fpasswd",
    "/dataops/datasets?version=" + quote("sample-v1.0:params.yaml"),
]


@pytest.mark.slow
@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_in_every_path_parameter_is_refused(server, hostile, path):
    status, body, headers = raw_get(server["port"], path, server["tokens"]["admin"])
    assert status in (400, 404), (path, status, body[:300])
    for secret in ("root:", "def ", "import ", "{%", str(hostile), str(REPO), "/tmp/"):
        assert secret not in body, (path, secret)
    assert headers.get("x-content-type-options") == "nosniff"


@pytest.mark.slow
def test_no_answer_contains_a_local_path(server, hostile):
    url, token = server["url"], server["tokens"]["admin"]
    tags = [v["tag"] for v in http("GET", f"{url}/dataops/api/versions", token)[1]["versions"]]
    assert set(tags) == VERSIONS | {"climb-v1.0"}
    bodies = [http("GET", f"{url}/dataops/api/versions", token)[1]]
    for tag in [*tags, "nope-v1.0"]:
        status, body, _ = http("GET", f"{url}/dataops/api/versions/{quote(tag, safe='')}", token)
        assert status == (404 if tag == "nope-v1.0" else 200), (tag, body)
        bodies.append(body)
        status, page, _ = http(
            "GET", f"{url}/dataops/datasets?{urlencode({'version': tag})}", token
        )
        bodies.append(page)
    text = json.dumps(bodies)
    assert str(hostile) not in text and str(hostile.parent) not in text and str(REPO) not in text
    assert "workspace" not in bodies[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("conf", "what"),
    [
        ({"ingest__key": "x" * 1_000_000}, "a 1 MB string"),
        ({"ingest__key": "id\u202egpj.exe"}, "a right-to-left override"),
        ({"validate__label_range__feature": "a\u2066b\u2069"}, "a bidi isolate"),
        ({"ingest__key": "a\x00b"}, "a NUL"),
        ({"sample__num_examples": 0}, "a number below the minimum"),
    ],
)
def test_oversized_and_bidi_params_are_refused_over_rest(server, conf, what):
    url, token = server["url"], server["tokens"]["admin"]
    status, body, _ = http(
        "POST",
        f"{url}/api/v2/dags/dataset_pipeline/dagRuns",
        token,
        {"logical_date": None, "conf": conf},
    )
    assert status == 400, (what, status, str(body)[:500])
    _, runs, _ = http("GET", f"{url}/api/v2/dags/dataset_pipeline/dagRuns", token)
    assert runs["total_entries"] == 0


@pytest.mark.slow
def test_script_payloads_never_run_in_a_browser(server):
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"{CHROMIUM} not installed (Debian package `chromium`; `make browser` installs it)"
        )
    from playwright.sync_api import sync_playwright

    url = server["url"]
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{url}/dataops/datasets")  # to Airflow's login and back
            page.wait_for_url("**/auth/login**", timeout=60_000)
            page.fill("input[name=username]", "viewer")
            page.fill("input[name=password]", server["passwords"]["viewer"])
            page.click("button[type=submit]")
            page.wait_for_url("**/dataops/datasets**", timeout=60_000)
            for tag in sorted(VERSIONS):
                page.goto(f"{url}/dataops/datasets?{urlencode({'version': tag})}")
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(300)
                assert page.locator(f"[{MARK}]").count() == 0, tag
                assert page.locator("script:not([src])").count() == 0, tag
                detail = page.locator("#detail").inner_text()
                assert tag in detail, tag
                if tag.startswith("sample-v1"):
                    # the payload is shown as text, where it was put
                    assert P in page.locator("#schema").inner_text()
                    assert P in page.locator("ul.violations").inner_text()
                    assert P in page.locator("#params").inner_text()
                    assert page.locator("#splits td.num").first.inner_text() == "?"
                    assert P in detail  # the tag's subject
            assert TAG_P in page.locator("#versions").inner_text()
            # the same through Airflow's UI, where the page is an iframe beside Airflow's token
            page.goto(f"{url}/plugin/datasets")
            frame = page.frame_locator("iframe").first
            frame.locator("#versions").wait_for(timeout=60_000)
            assert frame.locator(f"[{MARK}]").count() == 0
        finally:
            browser.close()
    assert dialogs == []
