"""The pipeline's stages, one module each, and how they are wired.

`sample` → `ingest` (reading each source format: `sources`) → `preprocess` → `serialize` →
`validate` (with `verify`, the integrity check of a dataset directory). Each stage is a plain
typed function over `dataops.config` models and paths; the CLI, `dvc.yaml` and the Airflow
tasks only call it. `pipeline` runs them all in one process; `dvcyaml` derives `dvc.yaml`
from them (each stage's deps are its import closure). What depends on a feature's kind is in
`dataops.features`, the shard bytes in `dataops.tfrecord`.
"""
