"""`dataops.load` and `Loader`, where they have always been imported from.

The loader lives in `dataops.loading` (one module per part); this module keeps the public
names importable from here.
"""

from __future__ import annotations

from dataops.loading.api import Loader, load
from dataops.loading.options import DEFAULT_DVC_PATH, LoadOptions, Verify
from dataops.loading.source import (
    EXPORT_FILE,
    Source,
    default_cache_dir,
    materialize_revision,
    resolve_source,
)
from dataops.loading.splits import Segment, canonical_split, parse_split, split_segments

__all__ = [
    "DEFAULT_DVC_PATH",
    "EXPORT_FILE",
    "LoadOptions",
    "Loader",
    "Segment",
    "Source",
    "Verify",
    "canonical_split",
    "default_cache_dir",
    "load",
    "materialize_revision",
    "parse_split",
    "resolve_source",
    "split_segments",
]
