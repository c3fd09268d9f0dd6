"""Human summaries of a dataset directory (`dataops info`): the dataset card, features with
their class names and descriptions, splits, and the validation verdict."""

from __future__ import annotations

import textwrap
from pathlib import Path

from dataops.artifacts import ValidationReport
from dataops.metadata import DatasetMetadata, FeatureInfo, read_metadata

MAX_CLASS_NAMES = 10
"""Class names listed per feature; more are counted (`... and 990 more`)."""


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render_info(directory: str | Path, report: str | Path | None = None) -> str:
    directory = Path(directory)
    meta = read_metadata(directory)
    lines = [
        f"dataset     {meta.name}  (format v{meta.format_version}, compression {meta.compression})",
        *_card(meta),
        f"location    {directory}",
        f"fingerprint {meta.fingerprint}",
        "features:",
    ]
    for f in meta.features:
        shape = "[" + ", ".join("None" if d is None else str(d) for d in f.shape) + "]"
        extra = f"  {f.num_classes} classes" if f.num_classes else ""
        lines.append(f"  {f.name:<16} {f.kind:<9} {f.dtype:<8} {shape:<14} {f.encoding}{extra}")
        lines += _feature_notes(f)
    lines.append("splits:")
    for s in meta.splits:
        lines.append(
            f"  {s.name:<12} {s.num_examples:>9} examples  {len(s.shards):>3} shards  {_size(s.num_bytes):>10}"
        )
    total = sum(s.num_examples for s in meta.splits)
    lines.append(
        f"  {'total':<12} {total:>9} examples  {sum(len(s.shards) for s in meta.splits):>3} shards  {_size(sum(s.num_bytes for s in meta.splits)):>10}"
    )
    if meta.skipped:
        lines.append("skipped rows: " + ", ".join(f"{k}={v}" for k, v in meta.skipped.items()))
    if report is not None and Path(report).exists():
        rep = ValidationReport.read(report)
        verdict = "PASSED" if rep.ok else f"FAILED ({len(rep.violations)} violations)"
        lines.append(f"validation  {verdict}  ({report})")
        lines += [f"  - {v}" for v in rep.violations]
    return "\n".join(lines)


def _card(meta: DatasetMetadata) -> list[str]:
    """The dataset card's lines: description (wrapped), homepage, license, citation."""
    out = []
    if meta.description:
        wrapped = textwrap.wrap(" ".join(meta.description.split()), 76) or [""]
        out.append(f"about       {wrapped[0]}")
        out += [f"            {line}" for line in wrapped[1:]]
    for label, value in (("homepage", meta.homepage), ("license", meta.license)):
        if value:
            out.append(f"{label:<11} {value}")
    if meta.citation:
        cite = meta.citation.strip().splitlines()
        out.append(f"citation    {cite[0]}")
        out += [f"            {line}" for line in cite[1:]]
    return out


def _feature_notes(f: FeatureInfo) -> list[str]:
    """Under a feature: its description and its class names (id: name)."""
    out = []
    if f.description:
        out += [f"      {line}" for line in textwrap.wrap(" ".join(f.description.split()), 74)]
    if f.vocabulary is not None:
        shown = [f"{i}={f.class_name(i)}" for i in range(min(len(f.vocabulary), MAX_CLASS_NAMES))]
        more = len(f.vocabulary) - len(shown)
        out.append(
            "      classes: " + ", ".join(shown) + (f", ... and {more} more" if more > 0 else "")
        )
    return out
