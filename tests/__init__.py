"""The test suite, a package so that every module imports shared helpers one way: `tests.support`."""
