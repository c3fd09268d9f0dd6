"""Airflow plugin: a **Datasets** page listing the published dataset versions, with a JSON API behind it.

Thin by design: the data comes from `dataops.release.versions` and the page from `dataops.airflow.page`;
this module only serves them. Who may see what is Airflow's auth manager's answer to the
questions Airflow's own API asks for the same data: read access to the `dataset_pipeline` DAG
and to assets (`GET /api/v2/dags/{dag_id}`, `GET /api/v2/assets`). Without a login the API
answers 401 and the page sends the browser to Airflow's login; a user without those rights
gets 403. The OpenAPI docs of this app are off. Every answer carries a strict
Content-Security-Policy and `X-Content-Type-Options: nosniff`; no answer contains a local path.
Workspace: `$DATAOPS_PROJECT_DIR` (default: the repository holding this `plugins/` folder).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

from airflow.api_fastapi.core_api.security import requires_access_asset, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

PREFIX = "/dataops"
# dags/dataset_pipeline.py; tests/airflow/test_security.py checks they agree
DAG_ID = "dataset_pipeline"
log = logging.getLogger("dataops.plugin")
FORBIDDEN_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Datasets · forbidden</title>"
    "<p>Your Airflow user may not read the <code>dataset_pipeline</code> DAG and its assets, "
    "so the Datasets page is not shown. Ask an Airflow admin for a role that can "
    "(with the simple auth manager: <code>viewer</code> or higher).</p>"
)


def workspace() -> Path:
    env = os.environ.get("DATAOPS_PROJECT_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


app = FastAPI(
    title="dataops datasets",
    description="Published dataset versions of the dataops project.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)

# The same checks as Airflow's core API for the DAG and for assets; each implies a valid login.
Authorized = [
    Depends(requires_access_dag("GET", param_dag_id=DAG_ID)),
    Depends(requires_access_asset("GET")),
]


@app.middleware("http")
async def _security_headers(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
    from dataops.airflow.page import SECURITY_HEADERS

    try:
        response = await call_next(request)
    except Exception:  # noqa: BLE001 - never a traceback or a path to the client
        log.exception("dataops plugin: %s %s failed", request.method, request.url.path)
        response = JSONResponse(
            {"detail": "internal error of the dataops plugin; the API server log has the details"},
            status_code=500,
        )
    for k, v in SECURITY_HEADERS.items():
        response.headers[k] = v
    return response


@app.exception_handler(HTTPException)
async def _login_first(request: Request, exc: HTTPException) -> Response:
    """The page sends a browser without a session to Airflow's login (and back) and tells a user
    without the rights why there is nothing; the API answers 401/403 like Airflow's own API."""
    if request.method == "GET" and request.url.path.rstrip("/").endswith("/datasets"):
        if exc.status_code == 401:
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(
                get_auth_manager().get_url_login(next_url=f"{PREFIX}/datasets"), status_code=303
            )
        if exc.status_code == 403:
            return HTMLResponse(FORBIDDEN_PAGE, status_code=403)
    return await http_exception_handler(request, exc)


@app.get("/api/versions", dependencies=Authorized)
def api_versions() -> dict:
    """Every published version, newest first."""
    from dataops.errors import DatasetError
    from dataops.release.versions import list_versions

    try:
        return {"versions": [v.to_json() for v in list_versions(workspace())]}
    except DatasetError as err:
        raise HTTPException(status_code=500, detail=str(err)) from None


@app.get("/api/versions/{tag:path}", dependencies=Authorized)
def api_version(tag: str) -> dict:
    """One version: summary, schema, splits and shards, params and their changes, validation, a load snippet."""
    from dataops.errors import DatasetError
    from dataops.release.history import valid_tag_name
    from dataops.release.versions import version_detail

    root = workspace()
    if not valid_tag_name(root, tag):
        raise HTTPException(
            status_code=400, detail="not a valid tag name (git check-ref-format refuses it)"
        )
    try:
        return version_detail(root, tag)
    except DatasetError as err:
        raise HTTPException(status_code=404, detail=str(err)) from None


def publishing_runs() -> dict[str, str]:
    """Tag → run id of the `dataset_pipeline` run whose publish task made it (from its Asset events)."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    runs: dict[str, str] = {}
    try:
        with create_session() as session:
            rows = session.execute(
                select(AssetEvent.extra, AssetEvent.source_run_id)
                .where(AssetEvent.source_dag_id == DAG_ID)
                .order_by(AssetEvent.id)
            )
            for extra, run_id in rows:
                tag = extra.get("tag") if isinstance(extra, dict) else None
                if isinstance(tag, str) and run_id:
                    runs.setdefault(tag, run_id)
    except Exception:  # noqa: BLE001 - the page is still useful without the links
        log.exception("dataops plugin: reading the asset events failed")
    return runs


@app.get("/datasets", response_class=HTMLResponse, dependencies=Authorized)
def page(version: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    """The Datasets page: the versions, and the details of `version` (default: the newest)."""
    from dataops.airflow.page import render_page

    status, html = render_page(workspace(), version, DAG_ID, publishing_runs())
    return HTMLResponse(html, status_code=status)


@app.get("/static/{name}")
def static(name: str) -> Response:
    """The page's stylesheet and script (no data in them, so no login needed)."""
    from dataops.airflow.page import static_file

    found = static_file(name)
    if found is None:
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(found[0], media_type=found[1])


class DatasetsPlugin(AirflowPlugin):
    name = "dataops_datasets"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "dataops datasets"}]
    external_views = [
        {
            "name": "Datasets",
            "href": f"{PREFIX}/datasets",
            "destination": "nav",
            "url_route": "datasets",
        }
    ]
