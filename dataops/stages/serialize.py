"""Stage 3, serialize: per-split Parquet → TFRecord shards of `tf.train.Example` + `metadata.json`.

Rows are encoded a batch at a time by `dataops.tfrecord.codec` (no per-example protobuf objects) and
streamed into shards. Three threads overlap: one reads the next Parquet batch, the caller
encodes, one compresses, hashes and writes; memory holds at most four batches (one read
ahead, one being encoded, two being written), whatever the split's size. Shard i of k holds
rows [i·N/k, (i+1)·N/k) of its split, in the preprocessed order. The shard writer and those
threads are `dataops.tfrecord.writer`'s; this module plans the shards and assembles
`metadata.json`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops.artifacts import PreprocessState, SourceFiles
from dataops.config import DatasetParams, SerializeParams
from dataops.errors import DatasetError
from dataops.fingerprint import (
    content_params,
    dataset_fingerprint,
    files_digest,
    ordered_ratios,
)
from dataops.fsutil import atomic_dir
from dataops.metadata import (
    FORMAT_VERSION,
    DatasetMetadata,
    FeatureInfo,
    InputInfo,
    ShardInfo,
    SplitInfo,
    write_metadata,
)
from dataops.naming import ShardName
from dataops.stages.preprocess import read_state
from dataops.tfrecord.codec import Column, encode_batch
from dataops.tfrecord.tfds_info import write_tfds_info
from dataops.tfrecord.writer import ShardWriter, read_ahead, shard_threads


@dataclass(frozen=True)
class SerializeResult:
    out: Path
    metadata: DatasetMetadata


def columns_from_arrow(
    table: pa.Table | pa.RecordBatch, features: list[FeatureInfo]
) -> list[Column]:
    """The codec's column view of a batch, without copying the value buffers."""
    cols = []
    for f in features:
        arr = table.column(f.name)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        n = len(arr)
        if arr.null_count:
            raise DatasetError(
                f"feature '{f.name}' has {arr.null_count} missing values; preprocess must fill or reject them"
            )
        wire = f.wire
        if wire == "bytes":
            off_dtype: type[np.signedinteger[Any]] = (
                np.int64
                if pa.types.is_large_binary(arr.type) or pa.types.is_large_string(arr.type)
                else np.int32
            )
            bufs = arr.buffers()
            offsets = np.frombuffer(bufs[1], dtype=off_dtype)[arr.offset : arr.offset + n + 1]
            data = (
                np.frombuffer(bufs[2], dtype=np.uint8)
                if bufs[2] is not None
                else np.zeros(0, np.uint8)
            )
            cols.append(Column(f.name, "bytes", data, offsets.astype(np.int64)))
            continue
        np_dtype = np.float32 if wire == "float" else np.int64
        if pa.types.is_fixed_size_list(arr.type):
            width = arr.type.list_size
            values = arr.flatten().to_numpy(zero_copy_only=False).astype(np_dtype, copy=False)
            offsets = np.arange(n + 1, dtype=np.int64) * width
        elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            raw = arr.offsets.to_numpy().astype(np.int64)
            offsets = raw - raw[0]
            values = arr.flatten().to_numpy(zero_copy_only=False).astype(np_dtype, copy=False)
        else:
            values = arr.to_numpy(zero_copy_only=False).astype(np_dtype, copy=False)
            offsets = np.arange(n + 1, dtype=np.int64)
        cols.append(Column(f.name, "float" if wire == "float" else "int64", values, offsets))
    return cols


def plan_shards(total: int, sample: tuple[int, int] | None, params: SerializeParams) -> list[int]:
    """Shard boundaries of a split of `total` rows: shard i holds rows [b[i], b[i+1]).

    `sample` is (encoded bytes, records) of the split's first batch of `params.batch_rows`
    rows (None when the split is empty); the shard count is the split's estimated size over
    `target_shard_bytes`, unless `num_shards` fixes it. Every driver plans with this.
    """
    if params.num_shards is not None:
        k = params.num_shards
    elif sample is None:
        k = 1
    else:
        est = sample[0] / sample[1] * total
        k = max(1, math.ceil(est / params.target_shard_bytes))
    k = max(1, min(k, total)) if total else 1
    return [i * total // k for i in range(k + 1)]


def sample_split(
    pf: pq.ParquetFile, features: list[FeatureInfo], params: SerializeParams
) -> tuple[int, int] | None:
    """(encoded bytes, records) of the first batch of a split: what `plan_shards` needs."""
    first = next(pf.iter_batches(batch_size=params.batch_rows, use_threads=False), None)
    if first is None or not first.num_rows:
        return None
    encoded = encode_batch(columns_from_arrow(first, features))
    return encoded.data.size, encoded.num_records


def write_shard(
    batches: Iterable[pa.RecordBatch | pa.Table],
    features: list[FeatureInfo],
    params: SerializeParams,
    out: Path,
    name: ShardName,
) -> ShardInfo:
    """Encode `batches` (every row of one shard, in order) into the shard `name` (and its
    index) under the directory `out`.

    The bytes are those `run_serialize` writes for the same rows, however they are batched;
    as there, reading, encoding and writing overlap on the same three threads.
    """
    with shard_threads(params) as (pipe, reader, gz):
        writer = ShardWriter(out, name, params, gz)
        n = 0
        for batch in read_ahead(iter(batches), reader):
            if batch.num_rows:
                enc = encode_batch(columns_from_arrow(batch, features))
                pipe.submit(writer.add, enc.data.data, enc.starts)
                n += enc.num_records
        return pipe.submit(writer.finish, n).result()


def _write_split(
    pf: pq.ParquetFile,
    name: str,
    split: str,
    features: list[FeatureInfo],
    params: SerializeParams,
    out: Path,
    tick: Callable[[int], None] = lambda n: None,
) -> SplitInfo:
    with shard_threads(params) as (pipe, reader, gz):
        total = pf.metadata.num_rows
        batches = pf.iter_batches(batch_size=params.batch_rows, use_threads=False)
        first = next(batches, None)
        encoded = (
            encode_batch(columns_from_arrow(first, features))
            if first is not None and first.num_rows
            else None
        )
        bounds = plan_shards(
            total,
            None if encoded is None else (encoded.data.size, encoded.num_records),
            params,
        )
        k = len(bounds) - 1
        shards: list[ShardInfo] = []
        shard = 0
        writer = ShardWriter(out, ShardName(name, split, 0, k), params, gz)
        row = 0  # global index of the next row to write

        def close_current() -> None:
            shards.append(pipe.submit(writer.finish, bounds[shard + 1] - bounds[shard]).result())

        def feed(batch_enc: Any) -> None:
            nonlocal row, shard, writer
            view = memoryview(batch_enc.data)
            starts = batch_enc.starts
            i, n = 0, batch_enc.num_records
            while i < n:
                take = min(n - i, bounds[shard + 1] - row)
                if take > 0:
                    pipe.submit(
                        writer.add, view[starts[i] : starts[i + take]], starts[i : i + take + 1]
                    )
                    i += take
                    row += take
                if row == bounds[shard + 1] and shard + 1 < k:
                    close_current()
                    shard += 1
                    writer = ShardWriter(out, ShardName(name, split, shard, k), params, gz)
            tick(n)

        if encoded is not None:
            feed(encoded)
        for batch in read_ahead(batches, reader):
            if batch.num_rows:
                feed(encode_batch(columns_from_arrow(batch, features)))
        close_current()
        if row != total:
            raise DatasetError(
                f"split '{split}': wrote {row} examples, the Parquet file holds {total}"
            )
        return SplitInfo(
            name=split,
            num_examples=total,
            num_bytes=sum(s.num_bytes for s in shards),
            shards=shards,
        )


def run_serialize(
    params: SerializeParams,
    dataset: DatasetParams | str,
    preprocessed: str | Path,
    out: str | Path,
    progress: Callable[[str, int | None, str], Callable[[int], None]] | None = None,
) -> SerializeResult:
    """Write `out/<name>-<split>.tfrecord-XXXXX-of-YYYYY` shards, their indexes in `out/index/`,
    `out/metadata.json` and TFDS's `dataset_info.json` and `features.json` (see `dataops.naming`).

    `dataset` gives the name and the dataset card (description, homepage, citation, license);
    a plain string is a name without a card.
    """
    card = DatasetParams(name=dataset) if isinstance(dataset, str) else dataset
    name = card.name
    preprocessed = Path(preprocessed)
    state = read_state(preprocessed)
    features = dataset_features(state)
    splits = state.split_names
    with atomic_dir(out) as tmp:
        infos = []
        for split in splits:
            path = preprocessed / f"{split}.parquet"
            if not path.exists():
                raise DatasetError(f"{path}: not found — run the preprocess stage first")
            # pre_buffer=False: with it, Arrow keeps every row group it has read buffered
            # until the file is closed, so memory would grow with the split's size.
            pf = pq.ParquetFile(path, pre_buffer=False)
            tick = (
                progress(f"serialize {split}", pf.metadata.num_rows, "rows")
                if progress
                else lambda n: None
            )
            infos.append(_write_split(pf, name, split, features, params, tmp, tick))
        meta = dataset_metadata(params, card, state, features, infos)
        write_dataset_info(tmp, meta)
        write_metadata(tmp, meta)
    return SerializeResult(out=Path(out), metadata=meta)


def dataset_features(state: PreprocessState) -> list[FeatureInfo]:
    """The features of a dataset from the preprocess `state`, each with the description its
    params give (when the state has none)."""
    pre_params = state.params.preprocess
    descriptions = {f["name"]: f.get("description") or "" for f in pre_params.get("features", [])}
    features = []
    for info in state.features:
        if not info.description and descriptions.get(info.name):
            info = info.model_copy(update={"description": descriptions[info.name]})
        features.append(info)
    return features


def dataset_metadata(
    params: SerializeParams,
    card: DatasetParams,
    state: PreprocessState,
    features: list[FeatureInfo],
    splits: list[SplitInfo],
) -> DatasetMetadata:
    """`metadata.json` of a dataset: the preprocess `state`, its `features`
    (`dataset_features`) and what was written per split. Every driver builds it here."""
    names = state.split_names
    used = content_params(_params_used(state.params.model_dump(mode="json"), names, params))
    inputs = {src: _input_info(entry) for src, entry in state.inputs.items()}
    return DatasetMetadata(
        format_version=FORMAT_VERSION,
        name=card.name,
        description=card.description,
        homepage=card.homepage,
        citation=card.citation,
        license=card.license,
        fingerprint=dataset_fingerprint(
            format_version=FORMAT_VERSION,
            name=card.name,
            inputs={k: v.model_dump() for k, v in inputs.items()},
            params=used,
        ),
        compression=params.compression,
        features=features,
        splits=splits,
        # The params as the fingerprint sees them: batch and partition sizes, which change
        # no byte, are left out, so changing them leaves metadata.json as it was too.
        preprocessing={"params": used, "state": state.state},
        inputs=inputs,
        skipped=state.skipped,
    )


def write_dataset_info(directory: str | Path, meta: DatasetMetadata) -> None:
    """The files a dataset directory holds beside its shards and `metadata.json`: TFDS's
    `dataset_info.json`, `features.json` and labels (uncompressed datasets only; TFDS's
    TFRecord reader takes no GZIP/ZLIB). Every driver writes them here."""
    if meta.compression == "none":
        write_tfds_info(directory, meta)


def _params_used(
    recorded: dict[str, Any], splits: list[str], params: SerializeParams
) -> dict[str, Any]:
    """The ingest/preprocess params recorded by preprocess and the serialize params, with the
    split ratios as an ordered list (their order decides the split; `state.json` keeps it in
    its split list, a JSON object with sorted keys would lose it)."""
    used = {**recorded, "serialize": params.model_dump(mode="json")}
    pre = dict(used.get("preprocess") or {})
    split = pre.get("split")
    if isinstance(split, dict) and isinstance(split.get("ratios"), dict):
        pre["split"] = {**split, "ratios": ordered_ratios(split["ratios"], splits)}
        used["preprocess"] = pre
    return used


def _input_info(entry: SourceFiles) -> InputInfo:
    """One source of the ingest manifest, its per-file list folded into one digest."""
    return InputInfo(
        format=entry.format,
        path=entry.path,
        num_files=entry.num_files,
        num_bytes=entry.num_bytes,
        sha256=files_digest(entry.files),
    )
