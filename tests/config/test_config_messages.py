"""A bad value is named once in a params error: `... got X` from the project's own validators,
or `(got X)` added to pydantic's messages — never both (`got [0, 32] (got [0, 32])`)."""

from __future__ import annotations

import pytest

from dataops.config import parse_params
from dataops.errors import ConfigError, stating_input
from tests.support.project import repo_params


def _image(**kw):
    return lambda d: d["preprocess"]["features"][1].update(kw)


def _tensor(shape):
    return lambda d: d["preprocess"]["features"].append(
        {"name": "t", "kind": "tensor", "column": "weight", "shape": shape}
    )


def _source(**kw):
    return lambda d: d["ingest"]["sources"][1].update(kw)


CASES = [
    (
        _image(size=[0, 32]),
        "key 'preprocess.features.1.image.size': each side of `size` must be 1..8192 pixels, got [0, 32]",
    ),
    (
        _image(size=[9000, 32]),
        "key 'preprocess.features.1.image.size': each side of `size` must be 1..8192 pixels, got [9000, 32]",
    ),
    (
        _image(background=[0, 0, 300]),
        "key 'preprocess.features.1.image.background': `background` is [r, g, b] with each value 0..255, got [0, 0, 300]",
    ),
    (
        _image(max_pixels=0),
        "key 'preprocess.features.1.image.max_pixels': Input should be greater than or equal to 1 (got 0)",
    ),
    (
        _image(max_pixels=1 << 30),
        "key 'preprocess.features.1.image.max_pixels': Input should be less than or equal to 134217728 (got 1073741824)",
    ),
    (
        _tensor([0, 4]),
        "key 'preprocess.features.9.tensor.shape': every side must be at least 1, got [0, 4]",
    ),
    (
        _source(delimiter="ab"),
        "key 'ingest.sources.1.delimiter': must be one character other than a newline, got 'ab'",
    ),
    (
        _source(quote_char="\n"),
        "key 'ingest.sources.1.quote_char': must be one character other than a newline, or null, got '\\n'",
    ),
    (  # 1 appears in "1024": the value is still added, once
        lambda d: d["serialize"].update(target_shard_bytes=1),
        "key 'serialize.target_shard_bytes': Input should be greater than or equal to 1024 (got 1)",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), CASES)
def test_a_bad_value_is_named_once(mutate, expected):
    data = repo_params()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse_params(data, "p.yaml")
    assert str(err.value) == f"p.yaml: {expected}"


def test_stating_input():
    assert stating_input("Value error, must be small, got [1, 2]", [1, 2]) == (
        "must be small, got [1, 2]"
    )
    assert (
        stating_input("must be one character, got 'ab'", "ab") == "must be one character, got 'ab'"
    )
    assert stating_input("Input should be at least 10", 1) == "Input should be at least 10 (got 1)"
    assert (
        stating_input("got 1 too many", 1) == "got 1 too many (got 1)"
    )  # not the value at the end
    assert stating_input("bad", "x" * 300).endswith("… (302 chars))")
