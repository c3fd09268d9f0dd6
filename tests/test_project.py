"""`dataops init` on a user's own table, followed as the README says; `head`, `show`, `versions`,
`dvc-yaml` as a user runs them."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.project import REPO, run_cli, tool_env


def _readme_block(marker: str) -> list[str]:
    """The commands of the README's bash block that follows `<!-- test: MARKER -->`."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- test: {marker} -->\s*```bash\n(.*?)```", text, re.S)
    assert m, f"README.md has no bash block marked {marker!r}"
    return [
        line.split("#")[0].strip() for line in m.group(1).splitlines() if line.split("#")[0].strip()
    ]


def _penguins(path: Path, n: int = 300) -> None:
    """A public-dataset-shaped table: no key column, a label, blanks where values are missing."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["species", "island", "bill_length_mm", "body_mass_g", "sex", "comment"])
        for i in range(n):
            species = ["Adelie", "Gentoo", "Chinstrap"][i % 3]
            bill = "" if i % 37 == 0 else f"{rng.normal(44, 5):.1f}"
            w.writerow(
                [
                    species,
                    ["Biscoe", "Dream", "Torgersen"][int(rng.integers(3))],
                    bill,
                    int(rng.integers(2700, 6300)),
                    ["male", "female"][i % 2],
                    " ".join(rng.choice(["calm", "loud", "nest", "egg", "fish", "rock"], 4)),
                ]
            )


@pytest.mark.slow
def test_use_your_own_data_as_the_readme_says(tmp_path: Path):
    _penguins(tmp_path / "penguins.csv")
    env = tool_env(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    for command in _readme_block("own-data"):
        r = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert r.returncode == 0, f"{command}: {r.stdout}{r.stderr}"
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    kinds = {f["name"]: f["kind"] for f in params["preprocess"]["features"]}
    assert kinds == {
        "species": "categorical",
        "island": "categorical",
        "bill_length_mm": "numeric",
        "body_mass_g": "numeric",
        "sex": "categorical",
        "comment": "text",
    }
    assert params["ingest"]["key"] is None  # no key column: rows keyed by position
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    assert "sample" not in stages and stages["ingest"]["deps"] == ["penguins.csv"]
    meta = json.loads((tmp_path / "data" / "tfrecords" / "metadata.json").read_text())
    assert sum(s["num_examples"] for s in meta["splits"]) == 300
    species = next(f for f in meta["features"] if f["name"] == "species")
    assert species["vocabulary"] == ["Adelie", "Chinstrap", "Gentoo"]
    # The data changed -> DVC knows (the source is a dep).
    with open(tmp_path / "penguins.csv", "a", encoding="utf-8") as f:
        f.write("Adelie,Dream,40.1,3900,male,calm egg\n")
    r = subprocess.run(
        ["dvc", "status"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert "penguins.csv" in r.stdout


def test_init_refuses_to_overwrite_and_names_unknown_formats(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("x: 1\n")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    r = run_cli("init", "--source", "t.csv", cwd=tmp_path)
    assert r.returncode == 2 and "params.yaml: exists; pass --force" in r.stderr
    (tmp_path / "t.xlsx").write_text("")
    r = run_cli("init", "--source", "t.xlsx", "--force", cwd=tmp_path)
    assert r.returncode == 2
    assert "--source t.xlsx: cannot tell the format from the suffix '.xlsx'" in r.stderr


def test_dvc_yaml_command_writes_the_committed_file(tmp_path: Path):
    out = tmp_path / "dvc.yaml"
    r = run_cli("dvc-yaml", "--out", str(out), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (REPO / "dvc.yaml").read_text()


def test_head_shows_decoded_values_with_class_names(small_tfrecords: Path):
    r = run_cli("head", str(small_tfrecords), "--split", "validation", "-n", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "sample · validation · first 2 examples"
    assert sum(line.startswith("--- ") for line in lines) == 2
    label = [line for line in lines if line.strip().startswith("label ")]
    assert len(label) == 2 and all(
        re.search(r"\d \((circle|cross|square|stripes)\)", x) for x in label
    )
    assert any("<uint8 32x32x3>" in line for line in lines)
    assert "oneDNN" not in r.stderr and "absl" not in r.stderr  # TensorFlow kept quiet


def test_show_writes_a_grid_one_row_per_class(small_tfrecords: Path, tmp_path: Path):
    from PIL import Image

    out = tmp_path / "grid.png"
    r = run_cli("show", str(small_tfrecords), "--out", str(out), "--per-class", "3")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        # 32x32 images scaled x2, 2 px gaps, a 110 px label margin; 4 classes.
        assert im.size == (110 + 3 * 66, 4 * 66)
        px = np.asarray(im)
    assert px[:, 110:].std() > 10  # pixels were pasted, not a blank canvas


def test_versions_lists_nothing_in_a_repository_without_published_tags(tmp_path: Path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    r = run_cli("versions", "--repo", str(tmp_path))
    assert r.returncode == 0 and r.stdout.startswith("no published versions")
    r = run_cli("versions", "--repo", str(tmp_path), "--json")
    assert json.loads(r.stdout) == []
