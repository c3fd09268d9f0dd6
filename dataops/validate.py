"""Stage 4, validate: re-read every shard with TensorFlow and check the declared expectations.

Checks, in order: shard sizes and sha256 against `metadata.json`; every record read by
`tf.data.TFRecordDataset` (which verifies the CRCs) and counted per shard; every record
parsed with the spec derived from the metadata; then the expectations of `params.yaml`
(minimum examples per split, label range, NaN/Inf in float features, class balance).
Writes `reports/validation.json` (deterministic; a DVC metric) whatever the verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.config import ValidateParams
from dataops.features.stored import stored_feature
from dataops.fsutil import write_json
from dataops.metadata import DatasetMetadata
from dataops.spec import compression_type, parse_spec
from dataops.verify import verify_dataset


@dataclass(frozen=True)
class ValidateResult:
    report: dict[str, Any]
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
) -> int:
    """Parse every record of one shard; update per-feature statistics; return the record count."""
    ds = tf.data.TFRecordDataset(str(path), compression_type=compression_type(meta)).batch(batch)
    features = [stored_feature(f) for f in meta.features]
    count = 0
    for raw in ds:
        parsed = tf.io.parse_example(raw, spec)
        count += int(raw.shape[0])
        for f in features:
            f.scan(parsed[f.info.name], stats)
    return count


def run_validate(
    params: ValidateParams, dataset: str | Path, report: str | Path | None = None
) -> ValidateResult:
    """Validate the dataset at `dataset`; write the report; return the violations."""
    dataset = Path(dataset)
    checked = verify_dataset(dataset, check_records=False)
    meta = checked.metadata
    violations = list(checked.problems)
    tf = _configure_tf()
    spec = parse_spec(meta)
    split_stats: dict[str, dict[str, Any]] = {}
    for split in meta.splits:
        stats: dict[str, Any] = {}
        for shard in split.shards:
            path = dataset / shard.file
            if not path.is_file():
                continue
            try:
                n = _scan_shard(tf, path, meta, spec, params.batch_size, stats)
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
    out = {
        "ok": not violations,
        "dataset": meta.name,
        "fingerprint": meta.fingerprint,
        "num_examples": meta.num_examples,
        "num_bytes": {s.name: s.num_bytes for s in meta.splits},
        "num_shards": {s.name: len(s.shards) for s in meta.splits},
        "skipped": meta.skipped,
        "violations": violations,
        "class_counts": {
            split: {
                name: {str(k): v for k, v in sorted(s.get("counts", {}).items())}
                for name, s in st.items()
                if "counts" in s
            }
            for split, st in split_stats.items()
        },
    }
    if report is not None:
        write_json(report, out)
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
                        f"split '{split}': class {cls} of '{cb.feature}' is {frac:.3f} of examples, outside [{cb.min_fraction}, {cb.max_fraction}]"
                    )
    return out
