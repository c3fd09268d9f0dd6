"""The Datasets page of the Airflow plugin, rendered on the server with escaping by construction.

The page is a Jinja2 template with autoescaping on for every value; numbers reach it as numbers
(`dataops.release.versions` coerces them). Its only script and style are static files
(`dataops/airflow/static/`), so the plugin can send a Content-Security-Policy without `'unsafe-inline'`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_FILES = {
    "datasets.css": "text/css; charset=utf-8",
    "datasets.js": "text/javascript; charset=utf-8",
}

# Every answer of the plugin carries these headers.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}


def fmt_bytes(n: Any) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        return "?"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def fmt_json(value: Any, indent: int | None = None) -> str:
    """JSON text of a value, as a plain string: the template's autoescaping escapes it."""
    import json

    return json.dumps(value, indent=indent, ensure_ascii=False)


def fmt_num(n: Any) -> str:
    return str(n) if isinstance(n, int) and not isinstance(n, bool) else "?"


@cache
def _env():  # type: ignore[no-untyped-def]
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = fmt_bytes
    env.filters["num"] = fmt_num
    env.filters["json"] = fmt_json
    return env


def version_href(tag: str) -> str:
    """The page's link to one version (relative; the tag URL-encoded, `/` included)."""
    return "datasets?" + urlencode({"version": tag})


def run_href(dag_id: str, run_id: str) -> str:
    """Airflow's page of a DAG run, relative to the plugin's page (`/dataops/datasets` → `/dags/...`)."""
    return f"../dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def render_page(
    workspace: str | Path,
    selected_tag: str | None,
    dag_id: str,
    runs: dict[str, str] | None = None,
) -> tuple[int, str]:
    """(HTTP status, HTML) of the Datasets page; errors are shown in the page, without local paths.
    `runs`: tag → id of the run that published it (linked when known)."""
    from dataops.errors import DatasetError
    from dataops.release.versions import list_versions, version_detail

    status, error = 200, None
    versions: list[dict[str, Any]] = []
    selected = None
    try:
        versions = [{**v.to_json(), "href": version_href(v.tag)} for v in list_versions(workspace)]
        tag = selected_tag or (versions[0]["tag"] if versions else None)
        if tag is not None:
            selected = version_detail(workspace, tag)
            run_id = (runs or {}).get(selected["tag"])
            selected["run"] = {"id": run_id, "href": run_href(dag_id, run_id)} if run_id else None
    except DatasetError as err:
        status, error = (404 if selected_tag else 500), str(err)
    html = (
        _env()
        .get_template("datasets.html")
        .render(versions=versions, selected=selected, error=error, dag_id=dag_id)
    )
    return status, html


def static_file(name: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of one of the page's static files; None for any other name."""
    media = STATIC_FILES.get(name)
    return ((STATIC_DIR / name).read_bytes(), media) if media else None
