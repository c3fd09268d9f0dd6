"""Tests of `dataops.loading` (`dataops.load`, its state and exact resumption)."""
