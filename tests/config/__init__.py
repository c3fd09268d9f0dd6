"""Tests of `dataops.config`: params.yaml validation and its messages."""
