"""Tests of `dataops.beam` and of choosing the engine."""
