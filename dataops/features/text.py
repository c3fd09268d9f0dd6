"""Text features: normalized strings, optionally also token ids from a train vocabulary.

A missing text is stored as the empty string unless `empty: error` makes it a bad row.

Token ids: `PAD_ID` pads, `OOV_ID` is any token outside the vocabulary, and the vocabulary's
k-th token (most frequent first) has id `FIRST_TOKEN_ID + k`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np
import pyarrow as pa

from dataops.config import TextFeature
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo

PAD_ID = 0
OOV_ID = 1
FIRST_TOKEN_ID = 2
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def normalize_text(text: str, f: TextFeature) -> str:
    """Unicode normalization, optional lowercasing, and runs of whitespace as one space."""
    if f.normalize != "none":
        text = unicodedata.normalize(f.normalize, text)
    if f.lowercase:
        text = text.lower()
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    """Words and single punctuation marks."""
    return _TOKEN_RE.findall(text)


class Text(Feature[TextFeature, "Counter[str] | None"]):
    model_type = TextFeature

    def infos(self, state: State | None) -> list[FeatureInfo]:
        f = self.model
        infos = [FeatureInfo(name=f.name, kind="text", dtype="string", shape=[], encoding="utf-8")]
        if f.tokenize:
            infos.append(
                FeatureInfo(
                    name=f.ids_name,
                    kind="sequence",
                    dtype="int64",
                    shape=[None],
                    encoding="none",
                    description=f"token ids of '{f.name}' ({PAD_ID} pad, {OOV_ID} out-of-vocabulary)",
                )
            )
        return infos

    def check(self, batch: Batch) -> None:
        name, vals = batch.strings(self.model)
        if self.model.empty == "error":
            self._fail_empty(batch, name, vals, [normalize_text(v or "", self.model) for v in vals])

    @staticmethod
    def _fail_empty(batch: Batch, name: str, vals: list[str | None], texts: list[str]) -> None:
        """Under `empty: error`: a missing text is a bad row, and so is one that normalizes to ''."""
        for row, (val, text) in enumerate(zip(vals, texts, strict=True)):
            if val is None:
                batch.fail(row, name, "missing_value", "text is missing")
            elif not text:
                batch.fail(row, name, "empty_text", f"text {val!r} is empty after normalization")

    def empty_partial(self) -> Counter[str] | None:
        return Counter() if self.model.tokenize else None

    def partial_fit(self, batch: Batch, use: np.ndarray) -> Counter[str] | None:
        if not self.model.tokenize:
            return None
        _, vals = batch.strings(self.model)
        counts: Counter[str] = Counter()
        for text, t in zip(vals, use, strict=True):
            if t and text is not None:
                counts.update(tokenize(normalize_text(text, self.model)))
        return counts

    def merge(self, a: Counter[str] | None, b: Counter[str] | None) -> Counter[str] | None:
        if a is None or b is None:
            return None
        a.update(b)
        return a

    def finalize(self, partial: Counter[str] | None) -> State | None:
        if partial is None:
            return None
        ranked = sorted(partial.items(), key=lambda kv: (-kv[1], kv[0]))[: self.model.max_vocab]
        return {"vocabulary": [t for t, _ in ranked], "pad_id": PAD_ID, "oov_id": OOV_ID}

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        f = self.model
        name, vals = batch.strings(f)
        texts = [normalize_text(val or "", f) for val in vals]
        if f.empty == "error":
            self._fail_empty(batch, name, vals, texts)
        out = {f.name: pa.array(texts, pa.string())}
        if f.tokenize:
            vocab = (state or {})["vocabulary"]
            tokens = {t: FIRST_TOKEN_ID + k for k, t in enumerate(vocab)}
            ids = [[tokens.get(t, OOV_ID) for t in tokenize(s)] for s in texts]
            out[f.ids_name] = pa.array(ids, pa.list_(pa.int64()))
        return out
