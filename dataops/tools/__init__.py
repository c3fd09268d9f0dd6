"""Commands around the pipeline, over a dataset directory or a new project.

`project` (`dataops init`: params.yaml and dvc.yaml proposed from a user's sources), `summary`
(`dataops info`), `preview` (`dataops head` / `show`), `export` (a dataset as a tf.data
snapshot, Parquet or HDF5) and `serving` (the fitted preprocessing as a SavedModel). None is a
stage: no `dvc.yaml` stage depends on them.
"""
