"""Key (passthrough) features: the row's string, stored as UTF-8 text unchanged."""

from __future__ import annotations

import pyarrow as pa

from dataops.config import PassthroughFeature
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo


class Key(Feature[PassthroughFeature, None]):
    model_type = PassthroughFeature

    def infos(self, state: State | None) -> list[FeatureInfo]:
        return [
            FeatureInfo(name=self.name, kind="text", dtype="string", shape=[], encoding="utf-8")
        ]

    def check(self, batch: Batch) -> None:
        batch.strings(self.model)

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        _, vals = batch.strings(self.model)
        return {self.name: pa.array([v or "" for v in vals], pa.string())}
