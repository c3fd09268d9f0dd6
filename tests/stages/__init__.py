"""Tests of `dataops.stages`: sample, sources, ingest, preprocess, serialize, validate, DVC views."""
