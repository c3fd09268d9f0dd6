"""The loader in parts: what `dataops.load` is made of, one concept per module.

    options   LoadOptions: every keyword of `dataops.load`, typed and validated once
    source    a dataset directory, or a git revision of a DVC repository materialized
    splits    split expressions → shard segments, and the segment → shard lookup
    state     LoaderState and the pure position arithmetic (epochs, batches, resume)
    checks    integrity: what is checked when a loader is built, and naming a failure
    readers   raw records: indexed (block by block), shuffled epochs, cached, plain, per worker
    snapshot  the reader of a `tf.data` snapshot export
    decode    parse + decode of a batch of records into the element of the dataset
    iterator  DatasetIterator: a resumable iterator that owns its state
    api       Loader (wires the parts) and `load`

The package is called `loading`, not `load`: `dataops.load` is the function, and a subpackage
of that name would replace it as an attribute of `dataops` as soon as it was imported.
Imports only go down this list's dependencies (no cycle); TensorFlow is imported only
inside functions.
"""

from __future__ import annotations

from dataops.loading.api import Loader, load
from dataops.loading.options import LoadOptions
from dataops.loading.state import LoaderState

__all__ = ["LoadOptions", "Loader", "LoaderState", "load"]
