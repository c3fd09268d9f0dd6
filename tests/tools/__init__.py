"""Tests of `dataops.tools`: export and the serving preprocessor."""
