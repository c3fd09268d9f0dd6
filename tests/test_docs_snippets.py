"""Every Python block of README.md and docs/*.md runs, as written, against a demo-shaped project.

The blocks of one file run in order in one process (like a notebook: a later block may use a
name an earlier one defined), in a copy of the small sample project (`data/tfrecords` and the
rest). A block preceded by `<!-- skip-snippet: REASON -->` is not run; the reason must say why.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import REPO

BLOCK = re.compile(r"(<!-- skip-snippet: (?P<why>[^>]*?) -->\s*)?```python\n(?P<code>.*?)```", re.S)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[tuple[str | None, str]]:
    return [(m["why"], m["code"]) for m in BLOCK.finditer(path.read_text(encoding="utf-8"))]


def test_every_skipped_block_says_why():
    for path in DOCS:
        for why, _ in blocks(path):
            assert why is None or len(why.strip()) > 10, f"{path.name}: a skip without a reason"


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc: Path, small_dataset: Path, tmp_path: Path):
    runnable = [code for why, code in blocks(doc) if why is None]
    if not runnable:
        pytest.skip(f"{doc.name} has no runnable Python block")
    project = tmp_path / "project"
    shutil.copytree(small_dataset, project, ignore=shutil.ignore_patterns("*.incomplete-*"))
    script = "\n\n".join(runnable)
    (project / "snippets.py").write_text(script, encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "snippets.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, f"{doc.name}: a Python block failed:\n{r.stderr[-3000:]}"


def test_readme_params_reference_is_the_models():
    """README's params table is generated from dataops.config (`python -m dataops.config.doc`)."""
    from dataops.config.doc import BEGIN, END, reference_markdown

    text = (REPO / "README.md").read_text(encoding="utf-8")
    have = text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"
    assert have == reference_markdown(), (
        "README params table is stale: paste `python -m dataops.config.doc`"
    )


def test_relative_links_point_to_files():
    link = re.compile(r"\]\((?!https?://|#)([^)#\s]+)(#[^)]*)?\)")
    for doc in DOCS:
        for target, _ in link.findall(doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name}: link to missing {target}"
