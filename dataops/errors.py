"""The errors a user can meet, each mapped to a CLI exit code."""

from __future__ import annotations


class DataopsError(Exception):
    """Base class: a message meant for the person running the pipeline."""

    exit_code = 1


class ConfigError(DataopsError):
    """`params.yaml` or a command-line option is wrong (exit code 2)."""

    exit_code = 2


class DatasetError(DataopsError):
    """Input data or a serialized dataset is bad: a row, a file or a shard (exit code 1)."""

    exit_code = 1


class ValidationFailed(DataopsError):
    """Validation found violations; `violations` holds one line each (exit code 1)."""

    exit_code = 1

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        super().__init__("\n".join(self.violations))
