"""`params.yaml`: one pydantic model per stage, validated once at the edge.

The file is read with a bounded, strict YAML loader (`load_yaml`): at most `MAX_PARAMS_BYTES`,
duplicate keys refused (as DVC refuses them), aliases allowed only while the document they expand
to stays under `MAX_YAML_NODES` nodes (a "billion laughs" file is refused at once), YAML 1.2
booleans (`true`/`false` only; `yes`/`no`/`on`/`off` stay strings, as DVC reads them). The models
are strict (`"2"` is not an int, `"yes"` not a bool) and every string, size and shape is bounded;
checks across sections (referenced features and splits exist, min <= max) run at parse time.

The models are one module per part: `base` (the strict model, bounds, shared field types),
`ingest`, `features` (one model per feature kind), `sections` (dataset, sample, preprocess,
serialize, validate), `params` (the whole file, and reading it) and `yamlload` (the bounded YAML
loader); `doc` renders the README's reference from them. `dataops.config` is the one import path
for all of them: the names below are its public surface.
"""

from __future__ import annotations

from dataops.config.base import (
    MAX_BATCH_ROWS,
    MAX_NAME,
    MAX_PARAMS_BYTES,
    MAX_SEED,
    MAX_TENSOR_ELEMENTS,
    MAX_YAML_NODES,
    BatchRows,
    Name,
    OnError,
    Seed,
    StrictModel,
    check_ref_component,
)
from dataops.config.features import (
    DEFAULT_MAX_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_MAX_PIXELS,
    CategoricalFeature,
    Feature,
    FeatureColumn,
    FeatureName,
    ImageFeature,
    NumericFeature,
    PassthroughFeature,
    SequenceFeature,
    TensorFeature,
    TextFeature,
)
from dataops.config.ingest import IngestParams, JsonType, SourceFormat, SourceParams
from dataops.config.params import Params, load_params, load_params_data, parse_params
from dataops.config.sections import (
    DEFAULT_DEFLATE_LEVEL,
    DEFLATE_MAX_LEVEL,
    ClassBalance,
    DatasetParams,
    LabelRange,
    PreprocessParams,
    SampleParams,
    SerializeParams,
    SplitParams,
    ValidateParams,
)
from dataops.config.yamlload import load_yaml

__all__ = [
    "BatchRows",
    "CategoricalFeature",
    "ClassBalance",
    "DEFAULT_DEFLATE_LEVEL",
    "DEFAULT_MAX_PIXELS",
    "DEFLATE_MAX_LEVEL",
    "DatasetParams",
    "Feature",
    "FeatureColumn",
    "FeatureName",
    "ImageFeature",
    "IngestParams",
    "JsonType",
    "LabelRange",
    "MAX_BATCH_ROWS",
    "MAX_IMAGE_SIDE",
    "MAX_MAX_PIXELS",
    "MAX_NAME",
    "MAX_PARAMS_BYTES",
    "MAX_SEED",
    "MAX_TENSOR_ELEMENTS",
    "MAX_YAML_NODES",
    "Name",
    "NumericFeature",
    "OnError",
    "Params",
    "PassthroughFeature",
    "PreprocessParams",
    "SampleParams",
    "Seed",
    "SequenceFeature",
    "SerializeParams",
    "SourceFormat",
    "SourceParams",
    "SplitParams",
    "StrictModel",
    "TensorFeature",
    "TextFeature",
    "ValidateParams",
    "check_ref_component",
    "load_params",
    "load_params_data",
    "load_yaml",
    "parse_params",
]
