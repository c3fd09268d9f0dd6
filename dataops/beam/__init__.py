"""The heavy stages on Apache Beam: the same pure functions as the in-process drivers, the same bytes.

`run_preprocess_beam` and `run_serialize_beam` are thin drivers over the per-batch and
per-shard functions of `dataops.preprocess` and `dataops.serialize`; only the scheduling
differs. Beam is an optional dependency (the `beam` extra): nothing here is imported by the
package or the CLI unless `--engine beam` is chosen.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

OPTIONS_ENV = "DATAOPS_BEAM_OPTIONS"
"""Environment variable holding the Beam pipeline options when `--beam-options` is not given."""


def beam_args(options: str | Sequence[str] | None = None) -> list[str]:
    """Pipeline options as argv: `options` (a shell-quoted string or a list), else the
    environment variable `DATAOPS_BEAM_OPTIONS`, else none (DirectRunner, one worker)."""
    if options is None:
        options = os.environ.get(OPTIONS_ENV, "")
    if isinstance(options, str):
        return shlex.split(options)
    return list(options)
