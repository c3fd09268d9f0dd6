"""Tests of `dataops.imaging`: images read exactly."""
