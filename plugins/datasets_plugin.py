"""Airflow plugin: a **Datasets** page listing the published dataset versions, with a JSON API behind it.

Thin by design: the data comes from `dataops.versions` (git tags + DVC cache); this module only
serves it. Every endpoint requires a user logged into Airflow (Bearer token or the UI's cookie).
Workspace: `$DATAOPS_PROJECT_DIR` (default: the repository holding this `plugins/` folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response

PREFIX = "/dataops"


def workspace() -> Path:
    env = os.environ.get("DATAOPS_PROJECT_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


app = FastAPI(
    title="dataops datasets", description="Published dataset versions of the dataops project."
)


@app.exception_handler(HTTPException)
async def _login_first(request: Request, exc: HTTPException) -> Response:
    """The page sends a browser without a session to Airflow's login (and back); the API answers 401."""
    if (
        exc.status_code in (401, 403)
        and request.url.path.endswith("/datasets")
        and request.method == "GET"
    ):
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(
            get_auth_manager().get_url_login(next_url=f"{PREFIX}/datasets"), status_code=303
        )
    return await http_exception_handler(request, exc)


@app.get("/api/versions")
def api_versions(user: GetUserDep) -> dict:
    """Every published version, newest first."""
    from dataops.versions import list_versions

    root = workspace()
    return {"workspace": str(root), "versions": [v.to_json() for v in list_versions(root)]}


@app.get("/api/versions/{tag}")
def api_version(tag: str, user: GetUserDep) -> dict:
    """One version: summary, schema, splits and shards, params, validation."""
    from dataops.errors import DatasetError
    from dataops.versions import version_detail

    try:
        return version_detail(workspace(), tag)
    except DatasetError as err:
        raise HTTPException(status_code=404, detail=str(err)) from None


@app.get("/datasets", response_class=HTMLResponse)
def page(user: GetUserDep) -> str:
    """The Datasets page; it renders what the JSON API returns."""
    from dataops.airflow_page import DATASETS_HTML

    return DATASETS_HTML


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
