"""DVC's views: a flat numeric `metrics.json`, plot data under `reports/plots/`, and the
top-level `plots:` of `dvc.yaml` that `dvc plots show` renders (checked in headless Chromium)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.airflow import CHROME_ARGS, CHROMIUM
from tests.support.project import REPO, small_params, small_params_data, tool_env

ARTIFACTS = REPO / "test-artifacts"
VEGA_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dataops-tests" / "vega"
)


def _dvc(*args: str, cwd: Path) -> str:
    r = subprocess.run(["dvc", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    assert r.returncode == 0, f"dvc {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r.stdout


def test_metrics_are_flat_numbers_and_views_are_deterministic(small_dataset, tmp_path):
    from dataops.stages.validate import run_validate

    reports = small_dataset / "reports"
    m = json.loads((reports / "metrics.json").read_text())
    assert all(type(v) is int for v in m.values()), m
    assert set(m) == {
        "bytes",
        "examples",
        "ok",
        "shards",
        "skipped",
        "violations",
        *(f"{k}.{s}" for k in ("bytes", "examples") for s in ("train", "validation", "test")),
    }
    report = json.loads((reports / "validation.json").read_text())
    assert m["examples"] == sum(report["num_examples"].values()) == 240
    assert m["examples.train"] == report["num_examples"]["train"]
    assert m["violations"] == len(report["violations"]) and m["ok"] == int(report["ok"])

    balance = list(csv.DictReader(open(reports / "plots" / "class_balance" / "train.csv")))
    assert [r["class"] for r in balance] == ["circle", "cross", "square", "stripes"]
    assert sum(int(r["count"]) for r in balance) == m["examples.train"]
    hist = list(csv.DictReader(open(reports / "plots" / "histograms" / "weight.csv")))
    assert len(hist) == 20 and list(hist[0]) == ["value", "train", "validation", "test"]
    assert abs(sum(float(r["train"]) for r in hist) - 1) < 1e-5
    assert sorted(p.name for p in (reports / "plots" / "histograms").iterdir()) == [
        "height.csv",
        "weight.csv",
    ]

    # The same dataset validated again elsewhere: the same bytes (no timestamps, no paths).
    (tmp_path / "plots" / "stale").mkdir(parents=True)
    run_validate(
        small_params().validate_, small_dataset / "data" / "tfrecords", tmp_path / "v.json"
    )
    assert not (tmp_path / "plots" / "stale").exists()
    for rel in [
        "metrics.json",
        *(p.relative_to(reports).as_posix() for p in (reports / "plots").rglob("*.csv")),
    ]:
        assert (tmp_path / rel).read_bytes() == (reports / rel).read_bytes(), rel


def test_dvc_yaml_declares_metrics_plots_and_keeps_the_report_in_git():
    from dataops.stages.dvcyaml import render

    data = yaml.safe_load(render(small_params_data(), with_sample=True))
    validate = data["stages"]["validate"]
    assert validate["metrics"] == [{"reports/metrics.json": {"cache": False}}]
    assert {"reports/validation.json": {"cache": False}} in validate["outs"]
    assert "reports/plots" in validate["outs"]  # a DVC-cached out: pushed, pulled, diffed
    plots = {k: v for p in data["plots"] for k, v in p.items()}
    assert plots["reports/plots/class_balance"]["template"] == "bar_horizontal"
    assert plots["reports/plots/histograms"]["y"] == ["train", "validation", "test"]


def _vega_files(html: str) -> dict[str, Path]:
    """The Vega scripts `dvc plots show`'s page loads from a CDN, as local files from the npm
    registry's packages (fetched once with `npm pack`, cached); skips when npm cannot get them."""
    out = {}
    for url, pkg in re.findall(
        r'<script src="(https://cdn\.jsdelivr\.net/npm/([^"]+))"></script>', html
    ):
        name, version = pkg.rsplit("@", 1)
        dest = VEGA_CACHE / f"{name}-{version}.min.js"
        if not dest.is_file():
            npm = shutil.which("npm")
            if npm is None:
                pytest.skip("npm not installed: it fetches the Vega scripts dvc's HTML loads")
            VEGA_CACHE.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(
                [npm, "pack", "--silent", pkg],
                cwd=VEGA_CACHE,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if r.returncode:
                pytest.skip(f"npm pack {pkg} failed: {r.stderr.strip()[-300:]}")
            tgz = VEGA_CACHE / r.stdout.strip().splitlines()[-1]
            with tarfile.open(tgz) as tar:
                meta = json.load(tar.extractfile("package/package.json"))
                member = tar.extractfile("package/" + meta["jsdelivr"].lstrip("./"))
                dest.write_bytes(member.read())
            tgz.unlink()
        out[url] = dest
    assert len(out) == 3, out  # vega, vega-lite, vega-embed
    return out


def _serve_file(path: Path):
    return lambda route: route.fulfill(
        path=str(path), content_type="text/javascript; charset=utf-8"
    )


@pytest.mark.slow
def test_dvc_plots_show_renders_in_chromium(small_dataset, tmp_path):
    """A DVC project with the rendered dvc.yaml and validate's outputs: `dvc metrics show` lists
    the flat numbers, `dvc plots show` writes an HTML page that Chromium renders to one SVG per
    plot file (class balance per split, one histogram per float feature); screenshot saved."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"{CHROMIUM} not installed (Debian package `chromium`; `make browser` installs it)"
        )
    from playwright.sync_api import sync_playwright

    from dataops.stages.dvcyaml import render

    proj = tmp_path / "proj"
    proj.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    _dvc("init", "-q", cwd=proj)
    (proj / "dvc.yaml").write_text(render(small_params_data(), with_sample=True))
    shutil.copytree(
        small_dataset / "reports", proj / "reports", ignore=shutil.ignore_patterns("runs")
    )

    shown = json.loads(_dvc("metrics", "show", "--json", cwd=proj))
    (rev,) = shown.values()  # the workspace (keyed "" before the first commit)
    metrics = rev["data"]["reports/metrics.json"]["data"]
    assert metrics["examples"] == 240 and metrics["violations"] == 0

    _dvc("plots", "show", "-o", "plots-html", cwd=proj)
    page_file = proj / "plots-html" / "index.html"
    html = page_file.read_text()
    files = _vega_files(html)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            for url, path in files.items():
                page.route(url, _serve_file(path))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_function(
                "document.querySelectorAll('svg.marks, canvas.marks').length == 5", timeout=30_000
            )
            assert errors == []
            page.screenshot(path=str(ARTIFACTS / "dvc-plots.png"), full_page=True)
            # One rendered chart per plot file: class balance of 3 splits, 2 float features.
            sizes = page.eval_on_selector_all(
                "canvas.marks, svg.marks", "els => els.map(e => [e.clientWidth, e.clientHeight])"
            )
            assert len(sizes) == 5 and all(w > 100 and h > 100 for w, h in sizes), sizes
        finally:
            browser.close()
    assert (ARTIFACTS / "dvc-plots.png").stat().st_size > 10_000
    if os.environ.get("DATAOPS_UPDATE_SCREENSHOTS") == "1":  # the README's copy, on request
        shutil.copyfile(ARTIFACTS / "dvc-plots.png", REPO / "docs" / "dvc-plots.png")
