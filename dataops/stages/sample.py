"""A deterministic sample source in ordinary on-disk formats (PNG folders, CSV, JSON Lines).

Nothing downstream knows these files are generated: ingest parses them like any user's data.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataops.config import SampleParams
from dataops.fsutil import atomic_dir

CLASSES = ["circle", "cross", "square", "stripes", "triangle", "dots", "ring", "wave"]
COLORS = ["red", "green", "blue", "yellow", "purple"]
WORDS = [
    "a",
    "the",
    "small",
    "large",
    "bright",
    "dark",
    "shape",
    "on",
    "of",
    "with",
    "near",
    "blue",
    "red",
    "green",
    "yellow",
    "purple",
    "pattern",
    "image",
    "picture",
    "centered",
    "corner",
    "edge",
    "soft",
    "sharp",
    "noisy",
    "clean",
    "café",
    "naïve",
]


@dataclass(frozen=True)
class SampleResult:
    out: Path
    num_examples: int
    classes: list[str]


def _class_names(k: int) -> list[str]:
    return [CLASSES[i] if i < len(CLASSES) else f"class{i:02d}" for i in range(k)]


def _draw(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    r = np.hypot(yy - cy, xx - cx)
    shapes = [
        r < 0.25,
        (np.abs(yy - cy) < 0.08) | (np.abs(xx - cx) < 0.08),
        (np.abs(yy - cy) < 0.25) & (np.abs(xx - cx) < 0.25),
        (np.floor(xx * 6) % 2) == 0,
        (yy > cy - 0.25) & (np.abs(xx - cx) < (yy - cy + 0.25) / 2),
        ((np.floor(xx * 8) + np.floor(yy * 8)) % 2) == 0,
        np.abs(r - 0.25) < 0.06,
        np.sin(xx * 12 + cy * 6) > yy * 2 - 1,
    ]
    mask = shapes[cls % len(shapes)]
    color = rng.integers(96, 256, size=3)
    img = rng.integers(0, 48, size=(size, size, 3))
    img[mask] = color
    return img.astype(np.uint8)


def generate_sample(
    out: str | Path,
    params: SampleParams,
    progress: Callable[[str, int | None, str], Callable[[int], None]] | None = None,
) -> SampleResult:
    """Write `images/<class>/<id>.png`, `attributes.csv` and `captions.jsonl` under `out`."""
    from PIL import Image

    rng = np.random.default_rng(params.seed)
    classes = _class_names(params.num_classes)
    out = Path(out)
    with atomic_dir(out) as tmp:
        for name in classes:
            (tmp / "images" / name).mkdir(parents=True)
        with (
            open(tmp / "attributes.csv", "w", newline="", encoding="utf-8") as fa,
            open(tmp / "captions.jsonl", "w", encoding="utf-8") as fc,
        ):
            writer = csv.writer(fa, lineterminator="\n")
            writer.writerow(["id", "weight", "height", "count", "color"])
            tick = (
                progress("sample", params.num_examples, "examples") if progress else lambda n: None
            )
            for i in range(params.num_examples):
                key = i + 1
                cls = int(rng.integers(0, params.num_classes))
                img = _draw(cls, params.image_size, rng)
                Image.fromarray(img, "RGB").save(
                    tmp / "images" / classes[cls] / f"{key}.png", format="PNG", compress_level=6
                )
                weight = round(float(rng.normal(50 + 10 * cls, 8)), 3)
                height = round(float(rng.gamma(2.0, 3.0)), 3)
                missing = rng.random(2) < 0.05
                writer.writerow(
                    [
                        key,
                        "" if missing[0] else repr(weight),
                        "" if missing[1] else repr(height),
                        int(rng.poisson(3 + cls)),
                        COLORS[int(rng.integers(0, len(COLORS)))],
                    ]
                )
                n_words = int(rng.integers(3, 12))
                words = [WORDS[int(j)] for j in rng.integers(0, len(WORDS), size=n_words)]
                caption = " ".join(words).capitalize() + "."
                seq_len = int(rng.integers(0, 16))
                tokens = [int(t) for t in rng.integers(0, 1000, size=seq_len)]
                fc.write(
                    json.dumps(
                        {"id": key, "caption": caption, "clicks": tokens}, ensure_ascii=False
                    )
                    + "\n"
                )
                tick(1)
    return SampleResult(out=out, num_examples=params.num_examples, classes=classes)
