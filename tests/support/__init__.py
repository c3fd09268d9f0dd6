"""Shared helpers of the test suite (none is a pytest fixture; fixtures live in conftest.py).

- `project`: the checkout (REPO, VENV_BIN), the environment for tools, `run_cli`, params builders,
  a committed-files copy of the project as a git repository.
- `airflow`: a clone with its own DVC remote, `dag.test()` in a subprocess, the api-server, HTTP.
- `records`: hand-made data on disk (sources of every format, a preprocessed folder, a published
  version's files).
- `faults`: the fault suite's stage table, process start, tree digests, leftovers.
- `progress_capture`: a pseudo-terminal for the CLI and its final frame; regenerates
  docs/progress.txt with `python -m tests.support.progress_capture docs/progress.txt`.

Test modules import from here (`from tests.support.project import run_cli`), never from each
other or from conftest; tests/test_suite_shape.py checks it.
"""
