"""The sample source: real files, deterministic bytes."""

from __future__ import annotations

import json

from dataops.config import SampleParams
from dataops.fsutil import sha256_file
from dataops.stages.sample import generate_sample


def _tree(root):
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_sample_is_deterministic_and_complete(tmp_path):
    params = SampleParams(num_examples=50, seed=3, image_size=16, num_classes=3)
    a = generate_sample(tmp_path / "a", params)
    generate_sample(tmp_path / "b", params)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    pngs = list((tmp_path / "a" / "images").rglob("*.png"))
    assert len(pngs) == 50
    assert sorted(p.name for p in (tmp_path / "a" / "images").iterdir()) == sorted(a.classes)
    lines = (tmp_path / "a" / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50
    rec = json.loads(lines[0])
    assert set(rec) == {"id", "caption", "clicks"}
    rows = (tmp_path / "a" / "attributes.csv").read_text().splitlines()
    assert rows[0] == "id,weight,height,count,color" and len(rows) == 51


def test_another_seed_gives_other_bytes(tmp_path):
    generate_sample(tmp_path / "a", SampleParams(num_examples=5, seed=1))
    generate_sample(tmp_path / "b", SampleParams(num_examples=5, seed=2))
    assert _tree(tmp_path / "a") != _tree(tmp_path / "b")
