"""Looking at a dataset: `dataops head` (decoded examples as text) and `dataops show` (an image
grid, one row per class, like `tfds.show_examples`). Both read through `dataops.load`, so what
they show is what training sees; values are told apart by their decoded shape, not their kind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dataops.errors import DatasetError
from dataops.metadata import DatasetMetadata, FeatureInfo, read_metadata

_TEXT_WIDTH = 60
_SEQ_ITEMS = 8


def _examples(directory: Path, split: str, limit: int | None) -> Iterator[dict[str, Any]]:
    """Decoded examples of `split` in stored order, as NumPy values."""
    from dataops.loader import load

    ds = load(directory, split, batch_size=256)
    seen = 0
    for batch in ds:
        size = int(next(iter(batch.values())).shape[0])
        for i in range(size):
            if limit is not None and seen >= limit:
                return
            out = {}
            for name, value in batch.items():
                v = value[i]
                out[name] = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
            seen += 1
            yield out


def _cell(info: FeatureInfo, value: Any) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return repr(text if len(text) <= _TEXT_WIDTH else text[: _TEXT_WIDTH - 1] + "…")
    arr = np.asarray(value)
    if arr.ndim == 0:
        item = arr.item()
        if info.vocabulary is not None and isinstance(item, int):
            return f"{item} ({info.class_name(item)})"
        return f"{item:.6g}" if isinstance(item, float) else str(item)
    if arr.ndim == 1 and arr.dtype.kind in "iuf":
        head = ", ".join(f"{x:.4g}" if arr.dtype.kind == "f" else str(x) for x in arr[:_SEQ_ITEMS])
        more = f", … ({arr.size} values)" if arr.size > _SEQ_ITEMS else ""
        return f"[{head}{more}]"
    return f"<{arr.dtype} {'x'.join(str(d) for d in arr.shape)}>"


def render_head(directory: str | Path, split: str, n: int) -> str:
    """The first `n` examples of `split`, one block per example: `feature: value` lines."""
    directory = Path(directory)
    meta = read_metadata(directory)
    infos = {f.name: f for f in meta.features}
    lines = [f"{meta.name} · {split} · first {n} examples"]
    for i, ex in enumerate(_examples(directory, split, n)):
        lines.append(f"--- {i}")
        width = max(len(k) for k in ex)
        lines += [f"  {k:<{width}}  {_cell(infos[k], v)}" for k, v in ex.items()]
    return "\n".join(lines) + "\n"


def _pick(meta: DatasetMetadata, image: str | None, label: str | None) -> tuple[str, FeatureInfo]:
    names = [f.name for f in meta.features]
    for wanted in (image, label):
        if wanted is not None and wanted not in names:
            raise DatasetError(f"no feature {wanted!r} in {meta.name} (it has {names})")
    if image is None:
        image = next((f.name for f in meta.features if len(f.shape) == 3), None)
        if image is None:
            raise DatasetError(
                f"{meta.name} has no image feature (a [height, width, channels] one)"
            )
    lab = next(
        (f for f in meta.features if (f.name == label if label else f.vocabulary is not None)),
        None,
    )
    if lab is None:
        raise DatasetError(f"{meta.name} has no feature with classes; name one with --label")
    return image, lab


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    x = pixels.astype(np.float64)
    top = 1.0 if x.size and x.max() <= 1.0 else 255.0
    return np.clip(np.rint(x / top * 255), 0, 255).astype(np.uint8)


def write_grid(
    directory: str | Path,
    out: str | Path,
    split: str = "train",
    image: str | None = None,
    label: str | None = None,
    per_class: int = 8,
) -> Path:
    """A PNG with one row per class of `label`: its first `per_class` images of `split`."""
    from PIL import Image, ImageDraw

    directory, out = Path(directory), Path(out)
    meta = read_metadata(directory)
    image, lab = _pick(meta, image, label)
    classes = lab.num_classes or len(lab.vocabulary or [])
    rows: dict[int, list[np.ndarray]] = {c: [] for c in range(classes)}
    for ex in _examples(directory, split, None):
        c = int(np.asarray(ex[lab.name]).item())
        if len(rows.setdefault(c, [])) < per_class:
            rows[c].append(_to_uint8(np.asarray(ex[image])))
        if all(len(v) >= per_class for v in rows.values()):
            break
    shown = [c for c in sorted(rows) if rows[c]]
    if not shown:
        raise DatasetError(f"split {split!r} of {meta.name} has no examples to show")
    h, w = rows[shown[0]][0].shape[:2]
    scale = max(1, 64 // max(h, w))
    cell_h, cell_w, margin = h * scale, w * scale, 110
    grid = Image.new("RGB", (margin + per_class * (cell_w + 2), len(shown) * (cell_h + 2)), "white")
    draw = ImageDraw.Draw(grid)
    for r, c in enumerate(shown):
        y = r * (cell_h + 2)
        draw.text((4, y + cell_h // 2 - 6), f"{c}: {lab.class_name(c)}"[:16], fill="black")
        for k, px in enumerate(rows[c]):
            tile = Image.fromarray(px[..., 0] if px.shape[-1] == 1 else px[..., :3])
            tile = tile.convert("RGB").resize((cell_w, cell_h), Image.Resampling.NEAREST)
            grid.paste(tile, (margin + k * (cell_w + 2), y))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.incomplete-{secrets.token_hex(4)}")
    try:
        grid.save(tmp, format="PNG")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
