"""Tests of `dataops.release`: the stage runner, publishing to a remote, versions."""
