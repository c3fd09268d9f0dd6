"""The feature class of each feature model of `params.yaml` (`preprocess.features`)."""

from __future__ import annotations

from typing import Any

from dataops.features.base import Feature
from dataops.features.categorical import Categorical
from dataops.features.image import Image
from dataops.features.key import Key
from dataops.features.numeric import Numeric
from dataops.features.sequence import Sequence
from dataops.features.tensor import Tensor
from dataops.features.text import Text

FEATURE_CLASSES: dict[type, type[Feature[Any, Any]]] = {
    cls.model_type: cls for cls in (Key, Numeric, Tensor, Categorical, Text, Sequence, Image)
}


def feature_for(model: Any) -> Feature[Any, Any]:
    """The feature object for a feature model (e.g. a `dataops.config.NumericFeature`)."""
    try:
        cls = FEATURE_CLASSES[type(model)]
    except KeyError:
        raise TypeError(f"no feature class for {type(model).__name__}") from None
    return cls(model)
