"""Stage 4, validate: re-read every shard with TensorFlow and check the declared expectations.

Checks, in order: shard sizes and sha256 against `metadata.json`; every record read by
`tf.data.TFRecordDataset` (which verifies the CRCs) and counted per shard; every record
parsed with the spec derived from the metadata; then the expectations of `params.yaml`
(minimum examples per split, label range, NaN/Inf in float features, class balance).
Writes `reports/validation.json` (the full report) whatever the verdict and, beside it, the
views DVC shows (`write_views`): `metrics.json` (flat numbers, for `dvc metrics show/diff`) and
`plots/` (class balance per split, histograms of float scalars, for `dvc plots show`). All of
them are deterministic: no timestamps, sorted keys, fixed number formats.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.artifacts import ValidationReport
from dataops.config import ValidateParams
from dataops.features.stored import stored_feature
from dataops.fsutil import write_json
from dataops.metadata import DatasetMetadata
from dataops.stages.verify import verify_dataset
from dataops.tfrecord.spec import compression_type, parse_spec


@dataclass(frozen=True)
class ValidateResult:
    report: ValidationReport
    violations: list[str]

    @property
    def ok(self) -> bool:
        return not self.violations


def _configure_tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return tf


def _scan_shard(
    tf: Any,
    path: Path,
    meta: DatasetMetadata,
    spec: dict[str, Any],
    batch: int,
    stats: dict[str, Any],
    tick: Callable[[int], None] = lambda n: None,
) -> int:
    """Parse every record of one shard; update per-feature statistics; return the record count."""
    ds = tf.data.TFRecordDataset(str(path), compression_type=compression_type(meta)).batch(batch)
    features = [stored_feature(f) for f in meta.features]
    count = 0
    for raw in ds:
        parsed = tf.io.parse_example(raw, spec)
        count += int(raw.shape[0])
        tick(int(raw.shape[0]))
        for f in features:
            f.scan(parsed[f.info.name], stats)
    return count


def run_validate(
    params: ValidateParams,
    dataset: str | Path,
    report: str | Path | None = None,
    progress: Callable[[str, int | None, str], Callable[[int], None]] | None = None,
) -> ValidateResult:
    """Validate the dataset at `dataset`; write the report; return the violations."""
    dataset = Path(dataset)
    checked = verify_dataset(dataset, check_records=False)
    meta = checked.metadata
    violations = list(checked.problems)
    tf = _configure_tf()
    spec = parse_spec(meta)
    split_stats: dict[str, dict[str, Any]] = {}
    tick = (
        progress("validate", sum(s.num_examples for s in meta.splits), "records")
        if progress
        else lambda n: None
    )
    for split in meta.splits:
        stats: dict[str, Any] = {}
        for shard in split.shards:
            path = dataset / shard.file
            if not path.is_file():
                continue
            try:
                n = _scan_shard(tf, path, meta, spec, params.batch_size, stats, tick)
            except (
                tf.errors.DataLossError,
                tf.errors.InvalidArgumentError,
                tf.errors.OutOfRangeError,
            ) as err:
                msg = err.message.splitlines()[0] if getattr(err, "message", None) else str(err)
                violations.append(f"{path}: unreadable: {msg}")
                continue
            if n != shard.num_examples:
                violations.append(f"{path}: holds {n} examples, metadata says {shard.num_examples}")
        split_stats[split.name] = stats
    violations += _expectations(params, meta, split_stats)
    out = ValidationReport(
        ok=not violations,
        dataset=meta.name,
        fingerprint=meta.fingerprint,
        num_examples=meta.num_examples,
        num_bytes={s.name: s.num_bytes for s in meta.splits},
        num_shards={s.name: len(s.shards) for s in meta.splits},
        skipped=meta.skipped,
        violations=violations,
        class_counts={
            split: {
                name: {str(k): v for k, v in sorted(s.get("counts", {}).items())}
                for name, s in st.items()
                if "counts" in s
            }
            for split, st in split_stats.items()
        },
    )
    if report is not None:
        out.write(report)
        write_views(Path(report).parent, params, meta, split_stats, violations)
    return ValidateResult(report=out, violations=violations)


def _expectations(
    params: ValidateParams, meta: DatasetMetadata, stats: dict[str, dict[str, Any]]
) -> list[str]:
    out: list[str] = []
    counts = meta.num_examples
    for split, minimum in params.min_examples.items():
        if split not in counts:
            out.append(
                f"validate.min_examples: split '{split}' does not exist (splits: {sorted(counts)})"
            )
        elif counts[split] < minimum:
            out.append(
                f"split '{split}': {counts[split]} examples, validate.min_examples wants at least {minimum}"
            )
    if not params.allow_nan:
        for split, st in stats.items():
            for name, s in st.items():
                if s.get("non_finite"):
                    out.append(
                        f"split '{split}': feature '{name}' has {s['non_finite']} NaN or Inf values (validate.allow_nan is false)"
                    )
    if params.label_range is not None:
        lr = params.label_range
        meta.feature(lr.feature)
        for split, st in stats.items():
            s = st.get(lr.feature)
            if s is None:
                out.append(f"validate.label_range: feature '{lr.feature}' is not an int64 scalar")
                break
            if s["min"] is not None and (s["min"] < lr.min or s["max"] > lr.max):
                out.append(
                    f"split '{split}': feature '{lr.feature}' spans [{s['min']}, {s['max']}], outside the allowed [{lr.min}, {lr.max}]"
                )
    if params.class_balance is not None:
        cb = params.class_balance
        for split, st in stats.items():
            s = st.get(cb.feature)
            if not s or not sum(s["counts"].values()):
                continue
            total = sum(s["counts"].values())
            for cls, n in sorted(s["counts"].items()):
                frac = n / total
                if frac < cb.min_fraction or frac > cb.max_fraction:
                    out.append(
                        f"split '{split}': class {cls} ({meta.feature(cb.feature).class_name(int(cls))!r}) of '{cb.feature}' is {frac:.3f} of examples, outside [{cb.min_fraction}, {cb.max_fraction}]"
                    )
    return out


# --- the views DVC shows ------------------------------------------------------------------------

METRICS_FILE = "metrics.json"
PLOTS_DIR = "plots"
HISTOGRAM_BINS = 20


def metrics(meta: DatasetMetadata, violations: list[str]) -> dict[str, int]:
    """The numbers `dvc metrics show` lists: examples, bytes and shards (total and per split),
    skipped rows, violations and the verdict (1 ok, 0 failed). Flat; numbers only."""
    out: dict[str, int] = {
        "examples": sum(meta.num_examples.values()),
        "bytes": sum(s.num_bytes for s in meta.splits),
        "shards": sum(len(s.shards) for s in meta.splits),
        "skipped": sum(meta.skipped.values()),
        "violations": len(violations),
        "ok": int(not violations),
    }
    for s in meta.splits:
        out[f"examples.{s.name}"] = s.num_examples
        out[f"bytes.{s.name}"] = s.num_bytes
    return dict(sorted(out.items()))


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _class_feature(params: ValidateParams) -> str | None:
    if params.class_balance is not None:
        return params.class_balance.feature
    if params.label_range is not None:
        return params.label_range.feature
    return None


def write_views(
    directory: Path,
    params: ValidateParams,
    meta: DatasetMetadata,
    stats: dict[str, dict[str, Any]],
    violations: list[str],
) -> None:
    """`metrics.json` and `plots/` under `directory` (the report's folder; `plots/` is
    replaced whole, so no stale file survives):

    * `plots/class_balance/<split>.csv` — `class,count,fraction` of the class feature
      (`validate.class_balance.feature`, else `validate.label_range.feature`), by class name,
      every class of the vocabulary (0 where a split has none);
    * `plots/histograms/<feature>.csv` — `value` (bin centre) and one column per split with the
      fraction of that split's finite values in the bin; the same 20 bins for every split.
    """
    import numpy as np

    write_json(directory / METRICS_FILE, metrics(meta, violations))
    plots = directory / PLOTS_DIR
    if plots.exists():
        shutil.rmtree(plots)
    plots.mkdir(parents=True)
    feature = _class_feature(params)
    if feature is not None:
        info = meta.feature(feature)
        for split, st in stats.items():
            counts = st.get(feature, {}).get("counts", {})
            total = sum(counts.values())
            ids = sorted(set(range(info.num_classes or 0)) | set(counts))
            rows = [
                [info.class_name(int(k)), counts.get(k, 0), f"{counts.get(k, 0) / total:.6f}"]
                for k in ids
            ]
            _write_csv(
                plots / "class_balance" / f"{split}.csv", ["class", "count", "fraction"], rows
            )
    names = sorted({n for st in stats.values() for n, s in st.items() if "values" in s})
    for name in names:
        per_split = {
            split: np.concatenate(st[name]["values"])
            if st.get(name, {}).get("values")
            else np.zeros(0)
            for split, st in stats.items()
        }
        finite = {k: v[np.isfinite(v)].astype(np.float64) for k, v in per_split.items()}
        every = np.concatenate(list(finite.values()))
        if not every.size:
            continue
        edges = np.linspace(every.min(), every.max(), HISTOGRAM_BINS + 1)
        hist = {k: np.histogram(v, bins=edges)[0] for k, v in finite.items()}
        rows = []
        for i in range(HISTOGRAM_BINS):
            row: list[Any] = [f"{(edges[i] + edges[i + 1]) / 2:.6g}"]
            for split, h in hist.items():
                n = finite[split].size
                row.append(f"{h[i] / n:.6f}" if n else "0")
            rows.append(row)
        _write_csv(plots / "histograms" / f"{name}.csv", ["value", *hist], rows)
