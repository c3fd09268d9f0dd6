"""Exact resumption: `LoaderState` and `DatasetIterator`, where they have always been imported from.

They live in `dataops.loading.state` (the state and its pure arithmetic) and
`dataops.loading.iterator` (the iterator that owns it); see there.
"""

from __future__ import annotations

from dataops.loading.iterator import make_iterator
from dataops.loading.state import (
    STATE_VERSION,
    LoaderState,
    OrderOptions,
    check_compatible,
    parse_state,
)

__all__ = [
    "STATE_VERSION",
    "LoaderState",
    "OrderOptions",
    "check_compatible",
    "make_iterator",
    "parse_state",
]
