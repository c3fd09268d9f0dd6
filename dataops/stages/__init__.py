"""The pipeline's stages and how they are wired.

`sample` → `ingest` (reading each source format: the `sources` package) → `preprocess` →
`serialize` → `validate` (with `verify`, the integrity check of a dataset directory). Each
stage is a plain typed function over `dataops.config` models and paths in the module of its
name; the CLI, `dvc.yaml` and the Airflow tasks only call it. A stage's parts sit beside it:

    ingest      stream (one source, streamed), join (the general join) over partitions
                (hash partitions on disk), snapshot (the writer and accounts they share)
    preprocess  split_assign (which split a row goes to), locate (naming a row in messages)
    serialize   the shard writer and its threads are `dataops.tfrecord.writer`

`pipeline` runs them all in one process; `dvcyaml` derives `dvc.yaml` from them (each stage's
deps are its import closure). What depends on a feature's kind is in `dataops.features`, the
shard bytes in `dataops.tfrecord`.
"""
