"""End to end as a user: `make airflow`'s script, a run triggered through the REST API, the Datasets page in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.airflow import (
    CHROME_ARGS,
    CHROMIUM,
    free_port,
    make_clone,
    stop_process_group,
    wait_for,
)
from tests.support.airflow import http as _http_full
from tests.support.project import REPO, git, tool_env

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "test-artifacts"


def _http(method: str, url: str, token: str | None = None, body: dict | None = None):
    status, data, _ = _http_full(method, url, token, body)
    return status, data


_wait = wait_for


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """`scripts/airflow-standalone.sh` of a temporary clone, on a free port; stopped (whole process group) at the end."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"{CHROMIUM} not installed (Debian package `chromium`; `make browser` installs it)"
        )
    root = tmp_path_factory.mktemp("ui")
    clone = make_clone(root / "proj", num_examples=120)
    port = free_port()
    home = root / "airflow-home"
    out_path = root / "standalone.out"
    env = tool_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW_PORT=str(port),
        DATAOPS_PROJECT_DIR=str(clone),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
    )
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(clone / "scripts" / "airflow-standalone.sh")],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        login = _wait(
            "the URL and login",
            lambda: (
                re.search(r"Login:\s+admin / (\S+)", out_path.read_text())
                or proc.poll() is not None
            ),
            240,
            log=home / "standalone.log",
        )
        assert proc.poll() is None, out_path.read_text()
        text = out_path.read_text()
        assert f"Airflow UI:  http://localhost:{port}" in text
        yield {
            "url": f"http://localhost:{port}",
            "password": login.group(1),
            "clone": clone,
            "home": home,
        }
    finally:
        stop_process_group(proc)


def test_trigger_through_rest_api_and_see_the_version_on_the_datasets_page(airflow):
    url, clone = airflow["url"], airflow["clone"]
    status, body = _http(
        "POST", f"{url}/auth/token", body={"username": "admin", "password": airflow["password"]}
    )
    assert status in (200, 201), body
    token = body["access_token"]

    # the plugin's endpoints need a logged-in user
    assert _http("GET", f"{url}/dataops/api/versions")[0] == 401

    # the page sends a browser without a session to the login, and back
    status, _, headers = _http_full("GET", f"{url}/dataops/datasets", follow=False)
    assert status == 303 and headers["location"].startswith("/auth/login?next=")

    _wait(
        "the DAG to be parsed",
        lambda: _http("GET", f"{url}/api/v2/dags/dataset_pipeline", token)[0] == 200,
        180,
        log=airflow["home"] / "standalone.log",
    )
    status, details = _http("GET", f"{url}/api/v2/dags/dataset_pipeline/details", token)
    assert status == 200 and details["max_active_runs"] == 1
    assert (
        details["params"]["sample__num_examples"]["value"] == 120
    )  # the trigger form's default: params.yaml

    status, run = _http(
        "POST",
        f"{url}/api/v2/dags/dataset_pipeline/dagRuns",
        token,
        {"logical_date": None, "conf": {"sample__num_examples": 130}},
    )
    assert status == 200, run
    run_id = run["dag_run_id"]

    def finished():
        s, r = _http("GET", f"{url}/api/v2/dags/dataset_pipeline/dagRuns/{run_id}", token)
        return r if s == 200 and r["state"] in ("success", "failed") else None

    final = _wait(
        f"run {run_id} to finish", finished, 600, every=5, log=airflow["home"] / "standalone.log"
    )
    _, tis = _http(
        "GET", f"{url}/api/v2/dags/dataset_pipeline/dagRuns/{run_id}/taskInstances", token
    )
    states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
    assert final["state"] == "success", states
    assert set(states.values()) == {"success"}, states
    assert git(clone, "tag", "--points-at", "HEAD") == "sample-v1.0"
    assert "num_examples: 130" in git(clone, "show", "sample-v1.0:params.yaml")

    status, events = _http("GET", f"{url}/api/v2/assets/events", token)
    assert status == 200, events
    extras = [e["extra"] for e in events["asset_events"]]
    assert [x["tag"] for x in extras] == ["sample-v1.0"] and sum(
        extras[0]["num_examples"].values()
    ) == 130
    assert extras[0]["commit"] == git(clone, "rev-parse", "HEAD")

    status, versions = _http("GET", f"{url}/dataops/api/versions", token)
    assert status == 200 and [v["tag"] for v in versions["versions"]] == ["sample-v1.0"]
    assert sum(versions["versions"][0]["num_examples"].values()) == 130

    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "datasets-page.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/")
            page.wait_for_url("**/auth/login**", timeout=60_000)
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", airflow["password"])
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle", timeout=60_000)
            page.get_by_role(
                "link", name="Datasets"
            ).first.click()  # the plugin's entry in the navigation
            frame = page.frame_locator("iframe").first
            row = frame.locator('tr.version[data-tag="sample-v1.0"]')
            row.wait_for(timeout=60_000)
            assert "passed" in row.inner_text()
            assert git(clone, "rev-parse", "HEAD")[:12] in row.inner_text()
            frame.locator("#splits").wait_for(timeout=30_000)
            run_link = frame.locator("#run")  # the run that published the version
            assert run_link.inner_text() == run_id
            assert run_link.get_attribute("href") == "../dags/dataset_pipeline/runs/" + quote(
                run_id, safe=""
            )
            assert "sample-train.tfrecord-00000-of-00001" in frame.locator("#detail").inner_text()
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot))

            # dark mode: Airflow's color mode (localStorage "theme", class "dark" on its <html>)
            page.emulate_media(color_scheme="dark")
            page.evaluate("localStorage.setItem('theme', 'dark')")
            page.reload()
            frame = page.frame_locator("iframe").first
            frame.locator("html.dark #detail").wait_for(timeout=60_000)
            bg = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
            assert bg != "rgb(255, 255, 255)", bg
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "datasets-page-dark.png"))
            page.evaluate("localStorage.setItem('theme', 'light')")
            page.emulate_media(color_scheme="light")

            # the trigger form: one field per tunable params.yaml key, grouped by section, with
            # params.yaml's values as defaults once the DAG is re-parsed after the run changed it
            def reparsed() -> bool:
                _, d = _http("GET", f"{url}/api/v2/dags/dataset_pipeline/details", token)
                return d["params"]["sample__num_examples"]["value"] == 130

            _wait("the DAG to be re-parsed with the new params.yaml", reparsed, 120)
            page.goto(f"{url}/dags/dataset_pipeline")
            page.get_by_role("button", name="Trigger").first.click()
            dialog = page.locator("[role=dialog][data-state=open]")
            dialog.get_by_text("params.yaml: sample").click()
            field = dialog.locator("input[name=element_sample__num_examples]")
            field.wait_for(timeout=30_000)
            assert field.input_value() == "130"
            page.screenshot(path=str(ARTIFACTS / "trigger-form.png"))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("DATAOPS_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copy(shot, REPO / "docs" / "datasets-page.png")
        shutil.copy(ARTIFACTS / "datasets-page-dark.png", REPO / "docs" / "datasets-page-dark.png")
        shutil.copy(ARTIFACTS / "trigger-form.png", REPO / "docs" / "trigger-form.png")
