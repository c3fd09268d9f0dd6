"""Releasing datasets: publishing a validated build as a git tag, and reading versions back.

`tags` (the tag scheme and its trailers), `publish` (the transaction: commit, tag, push, with
its git steps in `git` and the remote in `remote`), `versions` (listing and describing published
versions from git objects and the DVC cache, read by `history`), `dvc` (running a DVC stage as a
subprocess, streamed) and `dvcgraph` (the stage graph of `dvc.yaml`, read as plain YAML).
Nothing here imports Airflow.
"""
