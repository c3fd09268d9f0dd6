"""dataops: versioned, reproducible TensorFlow datasets; `dataops.load` reads them back.

The package import stays light: `load`, `Loader`, `LoaderState` are imported on first use
(module `__getattr__`), and TensorFlow only when a dataset is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LoadOptions", "Loader", "LoaderState", "load"]

_LAZY = {
    "load": "dataops.loader",
    "Loader": "dataops.loader",
    "LoaderState": "dataops.resume",
    "LoadOptions": "dataops.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dataops' has no attribute {name!r}")
