"""Stage 2, preprocess: split by key hash, fit statistics on train, transform every split.

Two streaming passes over the snapshot: the first assigns splits and fits the state
(means and standard deviations, vocabularies) on train rows only; the second transforms
each batch and appends it to `<split>.parquet`. The fitted state goes to `state.json`.
Images are decoded only in the second pass; when `on_error: skip` drops a train row there,
the state is refitted without it, so statistics always come from the train rows written.
All arithmetic is NumPy on float64 in a fixed order, so results do not depend on threads.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataops.config import (
    CategoricalFeature,
    ImageFeature,
    NumericFeature,
    OnError,
    PassthroughFeature,
    PreprocessParams,
    SequenceFeature,
    TensorFeature,
    TextFeature,
)
from dataops.errors import ConfigError, DatasetError
from dataops.fsutil import atomic_dir, write_json
from dataops.ingest import MANIFEST_FILE, SNAPSHOT_FILE, read_manifest, row_column
from dataops.metadata import FeatureInfo

STATE_FILE = "state.json"
PAD_ID, OOV_ID = 0, 1
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class PreprocessResult:
    out: Path
    num_examples: dict[str, int]
    skipped: dict[str, int]


class _BadRows:
    """Per-batch bad-row mask with the first message of each row."""

    def __init__(self, n: int) -> None:
        self.mask = np.zeros(n, dtype=bool)
        self.reasons: dict[int, tuple[str, str]] = {}

    def add(self, i: int, reason: str, message: str) -> None:
        if not self.mask[i]:
            self.mask[i] = True
            self.reasons[i] = (reason, message)


@dataclass
class _Ctx:
    """Where a batch's rows came from, for messages that name the file and row."""

    table: pa.Table
    key: str
    manifest: dict[str, Any]
    bad: _BadRows
    _labels: dict[str, list[str]] = field(default_factory=dict)

    def where(self, column: str, i: int) -> str:
        source = self.manifest["columns"].get(column)
        if source is None:
            return f"row {self.key}={self.table.column(self.key)[i].as_py()!r}"
        if source not in self._labels:
            self._labels[source] = self.table.column(row_column(source)).to_pylist()
        path = self.manifest["sources"][source]["path"]
        return f"{path}: {self._labels[source][i]} ({self.key}={self.table.column(self.key)[i].as_py()!r})"

    def fail(self, i: int, column: str, reason: str, text: str) -> None:
        self.bad.add(i, reason, f"{self.where(column, i)}: column '{column}': {text}")


def assign_splits(keys: list[str], ratios: dict[str, float], seed: int) -> np.ndarray:
    """Split index of each key: a hash of (seed, key) placed on the cumulative ratios.

    A row keeps its split when other rows are added or removed.
    """
    bounds = np.cumsum(list(ratios.values()))
    bounds[-1] = 1.0
    u = np.fromiter(
        (
            int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:8], "big") / 2.0**64
            for k in keys
        ),
        dtype=np.float64,
        count=len(keys),
    )
    return np.searchsorted(bounds, u, side="right").clip(max=len(bounds) - 1)


def normalize_text(text: str, f: TextFeature) -> str:
    if f.normalize != "none":
        text = unicodedata.normalize(f.normalize, text)
    if f.lowercase:
        text = text.lower()
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _column(ctx: _Ctx, f: Any) -> tuple[str, pa.ChunkedArray]:
    name = f.column or f.name
    if name not in ctx.table.column_names:
        have = [c for c in ctx.table.column_names if not c.startswith("__")]
        raise ConfigError(
            f"params.yaml: key 'preprocess.features' ({f.name}): column '{name}' is not in the snapshot (columns: {have})"
        )
    return name, ctx.table.column(name)


# --- per-kind parsing (shared by the fit and transform passes) ------------------------------


def _numbers(ctx: _Ctx, f: NumericFeature) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (int64 features: exact ints) and a mask of missing values."""
    name, col = _column(ctx, f)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    missing = arr.is_null().to_numpy(zero_copy_only=False).copy()
    target = pa.int64() if f.dtype == "int64" else pa.float64()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            values = pc.cast(arr, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out: list[Any] = []
            for i, v in enumerate(arr.to_pylist()):
                try:
                    out.append(None if v is None else (int(v) if f.dtype == "int64" else float(v)))
                except ValueError:
                    ctx.fail(
                        i,
                        name,
                        "wrong_type",
                        f"{v!r} is not {'an integer' if f.dtype == 'int64' else 'a number'}",
                    )
                    out.append(None)
            values = pa.array(out, target)
            missing |= values.is_null().to_numpy(zero_copy_only=False) & ~missing & ~ctx.bad.mask
    elif (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_boolean(arr.type)
    ):
        if f.dtype == "int64" and pa.types.is_floating(arr.type):
            raise DatasetError(f"column '{name}' holds floats; feature '{f.name}' wants int64")
        values = pc.cast(arr, target)
    else:
        raise DatasetError(
            f"column '{name}' has type {arr.type}; feature '{f.name}' ({f.kind}) needs numbers"
        )
    np_values = values.to_numpy(zero_copy_only=False)
    if f.dtype == "int64":
        np_values = (
            np.nan_to_num(np_values.astype(np.float64), nan=0).astype(np.int64)
            if values.null_count
            else np_values.astype(np.int64)
        )
    else:
        np_values = np_values.astype(np.float64)
        missing |= np.isnan(np_values)
    return np_values, missing


def _strings(ctx: _Ctx, f: Any) -> tuple[str, list[str | None]]:
    name, col = _column(ctx, f)
    if not (
        pa.types.is_string(col.type)
        or pa.types.is_large_string(col.type)
        or pa.types.is_integer(col.type)
    ):
        raise DatasetError(
            f"column '{name}' has type {col.type}; feature '{f.name}' ({f.kind}) needs strings"
        )
    return name, [None if v is None else str(v) for v in col.to_pylist()]


# --- fitting ---------------------------------------------------------------------------------


@dataclass
class _Fit:
    count: dict[str, int] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    total_sq: dict[str, float] = field(default_factory=dict)
    values: dict[str, Counter[str]] = field(default_factory=dict)


def _fit_batch(ctx: _Ctx, features: list[Any], train: np.ndarray, fit: _Fit) -> None:
    for f in features:
        if isinstance(f, NumericFeature) and f.dtype == "float32":
            v, missing = _numbers(ctx, f)
            use = train & ~missing
            x = v[use]
            fit.count[f.name] = fit.count.get(f.name, 0) + int(x.size)
            fit.total[f.name] = fit.total.get(f.name, 0.0) + float(np.sum(x))
            fit.total_sq[f.name] = fit.total_sq.get(f.name, 0.0) + float(np.sum(x * x))
        elif isinstance(f, CategoricalFeature):
            _, vals = _strings(ctx, f)
            c = fit.values.setdefault(f.name, Counter())
            c.update(v for v, t in zip(vals, train, strict=True) if t and v is not None)
        elif isinstance(f, TextFeature) and f.tokenize:
            _, vals = _strings(ctx, f)
            c = fit.values.setdefault(f.name, Counter())
            for text, t in zip(vals, train, strict=True):
                if t and text is not None:
                    c.update(tokenize(normalize_text(text, f)))


def _finish_fit(features: list[Any], fit: _Fit) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for f in features:
        if isinstance(f, NumericFeature) and f.dtype == "float32":
            n = fit.count.get(f.name, 0)
            if n == 0 and (f.impute == "mean" or f.standardize):
                raise DatasetError(
                    f"feature '{f.name}': no value in the train split to fit its mean"
                )
            mean = fit.total[f.name] / n if n else 0.0
            var = max(fit.total_sq[f.name] / n - mean * mean, 0.0) if n else 0.0
            std = math.sqrt(var)
            state[f.name] = {"count": n, "mean": mean, "std": std if std > 0 else 1.0}
        elif isinstance(f, CategoricalFeature):
            vocab = sorted(fit.values.get(f.name, Counter()))
            if not vocab:
                raise DatasetError(
                    f"feature '{f.name}': no value in the train split to build its vocabulary"
                )
            state[f.name] = {"vocabulary": vocab}
        elif isinstance(f, TextFeature) and f.tokenize:
            counts = fit.values.get(f.name, Counter())
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: f.max_vocab]
            state[f.name] = {
                "vocabulary": [t for t, _ in ranked],
                "pad_id": PAD_ID,
                "oov_id": OOV_ID,
            }
    return state


# --- transforming ----------------------------------------------------------------------------


@dataclass
class _ImageShape:
    shape: list[int] | None = None


def _transform(
    ctx: _Ctx, features: list[Any], state: dict[str, Any], image_shapes: dict[str, _ImageShape]
) -> dict[str, pa.Array]:
    out: dict[str, pa.Array] = {}
    n = ctx.table.num_rows
    for f in features:
        if isinstance(f, NumericFeature):
            v, missing = _numbers(ctx, f)
            name = f.column or f.name
            if f.dtype == "int64":
                for i in np.flatnonzero(missing & ~ctx.bad.mask):
                    ctx.fail(
                        int(i),
                        name,
                        "missing_value",
                        "value is missing (int64 features are not imputed)",
                    )
                out[f.name] = pa.array(v, pa.int64())
                continue
            st = state[f.name]
            if f.impute == "none":
                for i in np.flatnonzero(missing & ~ctx.bad.mask):
                    ctx.fail(int(i), name, "missing_value", "value is missing and impute is 'none'")
            fill = st["mean"] if f.impute == "mean" else 0.0
            v = np.where(missing, fill, v)
            if f.standardize:
                v = (v - st["mean"]) / st["std"]
            out[f.name] = pa.array(v.astype(np.float32), pa.float32())
        elif isinstance(f, TensorFeature):
            out[f.name] = _tensor(ctx, f)
        elif isinstance(f, CategoricalFeature):
            name, vals = _strings(ctx, f)
            index = {v: k for k, v in enumerate(state[f.name]["vocabulary"])}
            oov = len(index)
            ids = np.empty(n, dtype=np.int64)
            for row, val in enumerate(vals):
                got = index.get(val) if val is not None else None
                if got is None:
                    if f.unknown == "error":
                        ctx.fail(
                            row,
                            name,
                            "unknown_category",
                            "value is missing"
                            if val is None
                            else f"value {val!r} is not in the train vocabulary",
                        )
                    got = oov
                ids[row] = got
            out[f.name] = pa.array(ids, pa.int64())
        elif isinstance(f, TextFeature):
            name, vals = _strings(ctx, f)
            texts = []
            for row, val in enumerate(vals):
                if val is None:
                    ctx.fail(row, name, "missing_value", "text is missing")
                texts.append(normalize_text(val or "", f))
            out[f.name] = pa.array(texts, pa.string())
            if f.tokenize:
                tokens = {t: k + 2 for k, t in enumerate(state[f.name]["vocabulary"])}
                token_ids = [[tokens.get(t, OOV_ID) for t in tokenize(s)] for s in texts]
                out[f"{f.name}_ids"] = pa.array(token_ids, pa.list_(pa.int64()))
        elif isinstance(f, SequenceFeature):
            out[f.name] = _sequence(ctx, f)
        elif isinstance(f, ImageFeature):
            out[f.name] = _images(ctx, f, image_shapes.setdefault(f.name, _ImageShape()))
        elif isinstance(f, PassthroughFeature):
            name, vals = _strings(ctx, f)
            out[f.name] = pa.array([v or "" for v in vals], pa.string())
    return out


def _tensor(ctx: _Ctx, f: TensorFeature) -> pa.Array:
    name, col = _column(ctx, f)
    arr = col.combine_chunks()
    width = int(np.prod(f.shape)) if f.shape else 1
    np_dtype = np.float32 if f.dtype == "float32" else np.int64
    n = len(arr)
    if (
        pa.types.is_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
        or pa.types.is_large_list(arr.type)
    ):
        lengths = pc.list_value_length(arr).fill_null(-1).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(lengths != width):
            got = "missing" if lengths[i] < 0 else f"{lengths[i]} values"
            ctx.fail(
                int(i),
                name,
                "wrong_shape",
                f"expected {width} values for shape {f.shape}, got {got}",
            )
        good = lengths == width
        flat = np.zeros((n, width), dtype=np_dtype)
        if good.any():
            vals = pc.list_flatten(arr.filter(pa.array(good))).to_numpy(zero_copy_only=False)
            flat[good] = vals.astype(np_dtype).reshape(-1, width)
    elif width == 1 and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        for i in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
            ctx.fail(int(i), name, "missing_value", "value is missing")
        flat = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np_dtype).reshape(n, 1)
    else:
        raise DatasetError(
            f"column '{name}' has type {arr.type}; feature '{f.name}' (tensor {f.shape}) needs lists of numbers"
        )
    value_type = pa.float32() if f.dtype == "float32" else pa.int64()
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), value_type), width)


def _sequence(ctx: _Ctx, f: SequenceFeature) -> pa.Array:
    name, col = _column(ctx, f)
    arr = col.combine_chunks()
    value_type = pa.float32() if f.dtype == "float32" else pa.int64()
    if not (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        raise DatasetError(
            f"column '{name}' has type {arr.type}; feature '{f.name}' (sequence) needs lists"
        )
    if not (
        pa.types.is_integer(arr.type.value_type)
        or pa.types.is_floating(arr.type.value_type)
        or pa.types.is_null(arr.type.value_type)
    ):
        raise DatasetError(
            f"column '{name}' holds lists of {arr.type.value_type}; feature '{f.name}' needs numbers"
        )
    if f.dtype == "int64" and pa.types.is_floating(arr.type.value_type):
        raise DatasetError(f"column '{name}' holds floats; feature '{f.name}' wants int64")
    for i in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
        ctx.fail(int(i), name, "missing_value", "sequence is missing")
    arr = arr.fill_null(pa.scalar([], arr.type)) if arr.null_count else arr
    return arr.cast(pa.list_(value_type))


def _images(ctx: _Ctx, f: ImageFeature, seen: _ImageShape) -> pa.Array:
    from PIL import Image, UnidentifiedImageError

    name, col = _column(ctx, f)
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        raise DatasetError(
            f"column '{name}' has type {col.type}; feature '{f.name}' (image) needs encoded image bytes"
        )
    mode = "RGB" if f.channels == 3 else "L"
    out: list[Any] = []
    for i, data in enumerate(col.to_pylist()):
        if data is None:
            ctx.fail(i, name, "missing_value", "image is missing")
            out.append(None)
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                img = im.convert(mode)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
            ctx.fail(i, name, "unreadable_image", f"cannot decode image: {err}")
            out.append(None)
            continue
        if f.size is not None and (img.height, img.width) != tuple(f.size):
            img = img.resize((f.size[1], f.size[0]), Image.Resampling.BILINEAR)
        shape = [img.height, img.width, f.channels]
        if seen.shape is None:
            seen.shape = shape
        elif seen.shape != shape:
            ctx.fail(
                i,
                name,
                "wrong_shape",
                f"image is {shape[0]}x{shape[1]}, others are {seen.shape[0]}x{seen.shape[1]}; set `size` to resize",
            )
            out.append(None)
            continue
        pixels = np.asarray(img, dtype=np.uint8).reshape(shape)
        if f.dtype == "float32":
            x = pixels.astype(np.float32)
            out.append((x / np.float32(255) if f.scale else x).reshape(-1))
        elif f.encoding == "raw":
            out.append(pixels.tobytes())
        else:
            buf = io.BytesIO()
            Image.fromarray(pixels.reshape(shape[:2]) if f.channels == 1 else pixels, mode).save(
                buf, format="PNG", compress_level=6
            )
            out.append(buf.getvalue())
    if f.dtype == "float32":
        width = int(np.prod(seen.shape)) if seen.shape else 0
        flat = (
            np.stack([x if x is not None else np.zeros(width, np.float32) for x in out])
            if out
            else np.zeros((0, width), np.float32)
        )
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), pa.float32()), width)
    return pa.array([x if x is not None else b"" for x in out], pa.binary())


def _feature_infos(
    features: list[Any], state: dict[str, Any], image_shapes: dict[str, _ImageShape]
) -> list[FeatureInfo]:
    infos = []
    for f in features:
        if isinstance(f, NumericFeature):
            infos.append(
                FeatureInfo(name=f.name, kind="tensor", dtype=f.dtype, shape=[], encoding="none")
            )
        elif isinstance(f, TensorFeature):
            infos.append(
                FeatureInfo(
                    name=f.name, kind="tensor", dtype=f.dtype, shape=list(f.shape), encoding="none"
                )
            )
        elif isinstance(f, CategoricalFeature):
            vocab = state[f.name]["vocabulary"]
            infos.append(
                FeatureInfo(
                    name=f.name,
                    kind="tensor",
                    dtype="int64",
                    shape=[],
                    encoding="none",
                    num_classes=len(vocab),
                    vocabulary=vocab,
                )
            )
        elif isinstance(f, TextFeature):
            infos.append(
                FeatureInfo(name=f.name, kind="text", dtype="string", shape=[], encoding="utf-8")
            )
            if f.tokenize:
                infos.append(
                    FeatureInfo(
                        name=f"{f.name}_ids",
                        kind="sequence",
                        dtype="int64",
                        shape=[None],
                        encoding="none",
                        description=f"token ids of '{f.name}' (0 pad, 1 out-of-vocabulary)",
                    )
                )
        elif isinstance(f, SequenceFeature):
            infos.append(
                FeatureInfo(
                    name=f.name, kind="sequence", dtype=f.dtype, shape=[None], encoding="none"
                )
            )
        elif isinstance(f, ImageFeature):
            seen = image_shapes.get(f.name)
            shape: list[int] = (seen.shape if seen else None) or [*(f.size or [0, 0]), f.channels]
            if f.dtype == "float32":
                infos.append(
                    FeatureInfo(
                        name=f.name,
                        kind="tensor",
                        dtype="float32",
                        shape=list(shape),
                        encoding="none",
                    )
                )
            else:
                infos.append(
                    FeatureInfo(
                        name=f.name,
                        kind="image",
                        dtype="uint8",
                        shape=list(shape),
                        encoding=f.encoding,
                    )
                )
        elif isinstance(f, PassthroughFeature):
            infos.append(
                FeatureInfo(name=f.name, kind="text", dtype="string", shape=[], encoding="utf-8")
            )
    return infos


def run_preprocess(
    params: PreprocessParams, snapshot: str | Path, out: str | Path, on_error: OnError = "fail"
) -> PreprocessResult:
    """Transform `snapshot/snapshot.parquet` into `out/<split>.parquet` and `out/state.json`."""
    snapshot = Path(snapshot)
    manifest = read_manifest(snapshot)
    pf_path = snapshot / SNAPSHOT_FILE
    if not pf_path.exists():
        raise DatasetError(f"{pf_path}: not found — run the ingest stage first")
    run = _Run(params, pf_path, manifest, on_error)
    # Pass 1 checks everything but images (decoding them twice would double the cost), so a
    # train row can still be dropped in pass 2 for its image after it was fitted. Then the
    # state is refitted without those rows and pass 2 runs again: the statistics always come
    # from exactly the train rows written. Only `on_error: skip` with bad images pays for it.
    late: set[int] = set()  # snapshot row numbers fitted in pass 1 but dropped in pass 2
    while True:
        state, unfit = _fit_state(run, late)
        done = _write_splits(run, state, out, unfit)
        if isinstance(done, PreprocessResult):
            return done
        late |= done


@dataclass(frozen=True)
class _Run:
    """What both passes read: the params, the snapshot and how bad rows are handled."""

    params: PreprocessParams
    snapshot: Path
    manifest: dict[str, Any]
    on_error: OnError

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def features(self) -> list[Any]:
        return list(self.params.features)

    @property
    def split_names(self) -> list[str]:
        return list(self.params.split.ratios)

    @property
    def train_index(self) -> int:
        names = self.split_names
        return names.index("train") if "train" in names else 0

    def batches(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """One pass over the snapshot: each batch with the split index of its rows."""
        split = self.params.split
        pf = pq.ParquetFile(self.snapshot)
        for batch in pf.iter_batches(batch_size=self.params.batch_rows, use_threads=False):
            table = pa.Table.from_batches([batch])
            keys = table.column(self.key).to_pylist()
            yield table, assign_splits(keys, split.ratios, split.seed)

    def new_ctx(self, table: pa.Table) -> _Ctx:
        return _Ctx(table, self.key, self.manifest, _BadRows(table.num_rows))


class _Refit(Exception):
    def __init__(self, rows: set[int]) -> None:
        self.rows = rows


def _fit_state(run: _Run, exclude: set[int]) -> tuple[dict[str, Any], set[int]]:
    """Pass 1: fit on train rows that parse, leaving out the snapshot rows in `exclude`.
    Returns the state and the snapshot row numbers not fitted (bad rows and `exclude`)."""
    fit = _Fit()
    unfit = set(exclude)
    features = run.features
    start = 0
    for table, split in run.batches():
        ctx, probe = run.new_ctx(table), run.new_ctx(table)
        _transform_parse_only(probe, features)
        if run.on_error == "fail" and probe.bad.mask.any():
            i = int(np.flatnonzero(probe.bad.mask)[0])
            raise DatasetError(
                probe.bad.reasons[i][1]
                + " (set dataset.on_error: skip to drop such rows and count them)"
            )
        unfit.update(start + int(i) for i in np.flatnonzero(probe.bad.mask))
        use = (split == run.train_index) & ~probe.bad.mask
        for row in exclude:
            if start <= row < start + table.num_rows:
                use[row - start] = False
        _fit_batch(ctx, features, use, fit)
        start += table.num_rows
    return _finish_fit(features, fit), unfit


def _write_splits(
    run: _Run, state: dict[str, Any], out: str | Path, unfit: set[int]
) -> PreprocessResult | set[int]:
    """Pass 2: transform and write each split; or, when train rows that the state was fitted
    on turn out bad here (an image that does not decode), write nothing and return their
    snapshot row numbers (`unfit`: the rows the state was not fitted on)."""
    manifest, features, split_names = run.manifest, run.features, run.split_names
    train_index = run.train_index
    skipped: dict[str, int] = dict(manifest.get("skipped", {}))
    counts = dict.fromkeys(split_names, 0)
    image_shapes: dict[str, _ImageShape] = {}
    late: set[int] = set()
    start = 0
    try:
        with atomic_dir(out) as tmp:
            writers: dict[str, pq.ParquetWriter] = {}
            schema: pa.Schema | None = None
            for table, split in run.batches():
                ctx = run.new_ctx(table)
                cols = _transform(ctx, features, state, image_shapes)
                if ctx.bad.mask.any():
                    first = int(np.flatnonzero(ctx.bad.mask)[0])
                    if run.on_error == "fail":
                        raise DatasetError(
                            ctx.bad.reasons[first][1]
                            + " (set dataset.on_error: skip to drop such rows and count them)"
                        )
                    for i, (reason, _) in ctx.bad.reasons.items():
                        skipped[reason] = skipped.get(reason, 0) + 1
                        if split[i] == train_index and start + i not in unfit:
                            late.add(start + i)
                start += table.num_rows
                if late:
                    continue  # the state must be refitted first: only find every such row
                result = pa.table(cols)
                if schema is None:
                    schema = result.schema
                keep = ~ctx.bad.mask
                for si, name in enumerate(split_names):
                    sel = keep & (split == si)
                    if not sel.any():
                        continue
                    part = result.filter(pa.array(sel)).cast(schema)
                    if name not in writers:
                        writers[name] = _split_writer(tmp, name, schema)
                    writers[name].write_table(part, row_group_size=run.params.batch_rows)
                    counts[name] += part.num_rows
            if late:
                for w in writers.values():
                    w.close()
                raise _Refit(late)
            for name in split_names:
                if name not in writers:
                    if schema is None:
                        raise DatasetError("preprocess produced no rows")
                    writers[name] = _split_writer(tmp, name, schema)
                writers[name].close()
            infos = _feature_infos(features, state, image_shapes)
            write_json(
                tmp / STATE_FILE,
                {
                    "features": [i.model_dump(mode="json") for i in infos],
                    "state": state,
                    "splits": [{"name": n, "num_examples": c} for n, c in counts.items()],
                    "skipped": dict(sorted(skipped.items())),
                    "inputs_fingerprint": manifest["fingerprint"],
                    "inputs": manifest["sources"],
                    "params": {
                        "ingest": manifest["params"],
                        "preprocess": run.params.model_dump(mode="json"),
                    },
                },
            )
    except _Refit as refit:  # atomic_dir removed what was written
        return refit.rows
    return PreprocessResult(
        out=Path(out), num_examples=counts, skipped=dict(sorted(skipped.items()))
    )


def _split_writer(directory: Path, split: str, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        directory / f"{split}.parquet", schema, compression="zstd", use_dictionary=False
    )


def _transform_parse_only(ctx: _Ctx, features: list[Any]) -> None:
    """Find rows whose values do not parse (the same checks as the transform, minus images)."""
    for f in features:
        if isinstance(f, NumericFeature):
            v, missing = _numbers(ctx, f)
            if f.dtype == "int64" or f.impute == "none":
                name = f.column or f.name
                for i in np.flatnonzero(missing & ~ctx.bad.mask):
                    ctx.fail(
                        int(i),
                        name,
                        "missing_value",
                        "value is missing"
                        + (
                            " (int64 features are not imputed)"
                            if f.dtype == "int64"
                            else " and impute is 'none'"
                        ),
                    )
        elif isinstance(f, TensorFeature):
            _tensor(ctx, f)
        elif isinstance(f, SequenceFeature):
            _sequence(ctx, f)
        elif isinstance(f, TextFeature | PassthroughFeature | CategoricalFeature):
            _strings(ctx, f)


def read_state(directory: str | Path) -> dict[str, Any]:
    import json

    path = Path(directory) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found — run the preprocess stage first") from None


__all__ = ["MANIFEST_FILE", "run_preprocess", "read_state", "assign_splits"]
