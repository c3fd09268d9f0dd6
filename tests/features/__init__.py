"""Tests of `dataops.features`: one class per kind, statistics, missing values."""
