"""Text features: normalized strings, optionally also token ids from a train vocabulary.

A missing text is stored as the empty string unless `empty: error` makes it a bad row.

Token ids: `PAD_ID` pads, `OOV_ID` is any token outside the vocabulary, and the vocabulary's
k-th token (most frequent first) has id `FIRST_TOKEN_ID + k`.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any

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


@functools.cache
def _re2_class(predicate: str) -> str:
    """An RE2 character class (`[...]`) of exactly the code points for which Python's
    `str.isspace` (`"space"`) or word test of `re`'s `\\w` (`"word"`: `isalnum()` or `_`)
    holds. RE2's own `\\s` and `\\w` are ASCII-only, so serving spells out Python's sets."""

    def test(c: str) -> bool:
        return c.isspace() if predicate == "space" else (c.isalnum() or c == "_")

    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF or not test(chr(cp)):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


def tf_normalize_text(x: Any, f: TextFeature) -> Any:
    """`normalize_text` in TensorFlow string ops, except Unicode normalization: core
    TensorFlow has no NFC/NFKC op, so the text is taken as already normalized (exact for
    text that NFKC/NFC leaves unchanged, such as ASCII and NFC text without compatibility
    characters). Lowercasing is `tf.strings.lower(encoding="utf-8")`, per code point: it
    differs from `str.lower` only where that maps one character to several (U+0130) or by
    context (a final capital sigma)."""
    import tensorflow as tf

    if f.lowercase:
        # lower(encoding="utf-8") stops at the first NUL: lowercase the pieces between NULs.
        # (A NUL in an op's string attribute is cut too, so the joining NUL is a tensor.)
        nul = tf.constant("\x00")
        pieces = tf.ragged.map_flat_values(
            lambda p: tf.strings.lower(p, encoding="utf-8") + nul,
            tf.strings.split(x, sep="\x00"),
        )
        joined = tf.strings.reduce_join(pieces, axis=-1)
        x = tf.strings.substr(
            joined, tf.zeros_like(tf.strings.length(joined)), tf.strings.length(joined) - 1
        )
    x = tf.strings.regex_replace(x, _re2_class("space") + "+", " ")
    return tf.strings.regex_replace(x, "^ | $", "")


def tf_tokenize(x: Any) -> Any:
    """`tokenize` of normalized text (a batch of strings) as a RaggedTensor of tokens: every
    character neither word nor space gets a space either side, then the text is split on
    single spaces and the empty pieces dropped. Normalized text has no other whitespace."""
    import tensorflow as tf

    word, space = _re2_class("word"), _re2_class("space")
    punct = "[^" + word[1:-1] + space[1:-1] + "]"
    spaced = tf.strings.regex_replace(x, "(" + punct + ")", " \\1 ")
    pieces = tf.strings.split(spaced, sep=" ")
    return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)


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

    def serving_spec(self) -> Any:
        import tensorflow as tf

        return tf.TensorSpec([None], tf.string, name=self.source_column)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        """The normalized text (`tf_normalize_text`: without Unicode normalization) and, when
        tokenized, its token ids as a RaggedTensor: vocabulary token k -> `FIRST_TOKEN_ID + k`,
        any other token -> `OOV_ID`. Pass a missing text as ''."""
        import tensorflow as tf

        f = self.model
        table = None
        if f.tokenize:
            vocab = list((state or {})["vocabulary"])
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocab, tf.string),
                    tf.range(FIRST_TOKEN_ID, FIRST_TOKEN_ID + len(vocab), dtype=tf.int64),
                ),
                default_value=OOV_ID,
            )

        def serve(x: Any) -> dict[str, Any]:
            text = tf_normalize_text(x, f)
            out = {f.name: text}
            if table is not None:
                out[f.ids_name] = tf.ragged.map_flat_values(table.lookup, tf_tokenize(text))
            return out

        return serve
