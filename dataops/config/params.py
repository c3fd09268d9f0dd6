"""`Params`, the whole file: its sections, the checks across them, and reading it (`load_params`)
with errors that name the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from dataops.config.base import MAX_PARAMS_BYTES, StrictModel
from dataops.config.ingest import IngestParams
from dataops.config.sections import (
    DatasetParams,
    PreprocessParams,
    SampleParams,
    SerializeParams,
    ValidateParams,
)
from dataops.config.yamlload import load_yaml
from dataops.errors import ConfigError, clip, stating_input


def _feature_kinds(p: PreprocessParams) -> dict[str, bool | None]:
    """Stored feature name → True if an int64 scalar, False if surely not, None if the data tells."""
    return {
        n: (f.int64_scalar if n == f.name else False) for f in p.features for n in f.output_names
    }


class Params(StrictModel):
    dataset: DatasetParams = DatasetParams()
    sample: SampleParams = SampleParams()
    ingest: IngestParams
    preprocess: PreprocessParams
    serialize: SerializeParams = SerializeParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _across_sections(self) -> Params:
        kinds = _feature_kinds(self.preprocess)
        v = self.validate_
        for key, ref in (("label_range", v.label_range), ("class_balance", v.class_balance)):
            if ref is None:
                continue
            if ref.feature not in kinds:
                raise ValueError(
                    f"validate.{key}.feature: no feature {clip(repr(ref.feature))} in preprocess.features (features: {sorted(kinds)})"
                )
            if kinds[ref.feature] is False:
                raise ValueError(
                    f"validate.{key}.feature: feature {ref.feature!r} is not an int64 scalar (a categorical, an int64 numeric or an int64 tensor of shape [])"
                )
        splits = set(self.preprocess.split.ratios)
        unknown = sorted(set(v.min_examples) - splits)
        if unknown:
            raise ValueError(
                f"validate.min_examples: {clip(repr(unknown))} are not splits of preprocess.split.ratios (splits: {sorted(splits)})"
            )
        return self

    def section(self, name: str) -> dict[str, Any]:
        """The section `name` as plain JSON data (what the stage records in its outputs)."""
        value = getattr(self, "validate_" if name == "validate" else name)
        return value.model_dump(mode="json")


_HINTS = {
    "bool_type": "; write true or false, without quotes",
    "int_type": "; write a whole number without quotes",
    "float_type": "; write a number without quotes",
}


def _format_error(err: ValidationError, path: Path) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(
            str(p) for p in e["loc"] if not str(p).startswith(("function-after", "tagged-union"))
        )
        loc = loc.replace("validate_", "validate")
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key {clip(repr(loc))}")
        elif e["type"] == "missing":
            lines.append(f"{path}: missing key '{loc}'")
        elif not loc:  # a check across sections: the message names its keys
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg}")
        else:
            value = e.get("input")
            hint = _HINTS.get(e["type"], "") if isinstance(value, str) else ""
            msg = e["msg"].removeprefix("Value error, ")
            if not isinstance(value, dict):
                msg = stating_input(msg, value)
            lines.append(f"{path}: key '{loc}': {msg}{hint}")
    return "\n".join(lines)


def parse_params(data: Any, path: str | Path = "params.yaml") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key.

    Missing sections take their documented defaults (`dataset`, `sample`, `serialize`,
    `validate`); `ingest` and `preprocess` have none and are required.
    """
    path = Path(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least 'ingest' and 'preprocess'")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, path)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate `params.yaml` (at most `MAX_PARAMS_BYTES`)."""
    path = Path(path)
    return parse_params(load_params_data(path), path)


def load_params_data(path: str | Path = "params.yaml") -> Any:
    """The YAML data of a params file, read with the bounds of `load_yaml`, not yet validated."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; make the file readable") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_PARAMS_BYTES} bytes; a params file is a few KB — is this the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    return load_yaml(text, path)
