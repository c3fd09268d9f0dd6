"""Tests of `dataops.cli`: help, exit codes, the order of a stage's checks, progress bars."""
