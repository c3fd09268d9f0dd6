"""Train a small Keras model on the sample dataset for one epoch, fed by `dataops.load`.

    python examples/train_keras.py --data data/tfrecords
    python examples/train_keras.py --repo . --rev sample-v1.0     # a published version, by tag

With `--state FILE`, the loader position is saved after every batch (a few hundred bytes);
rerun with the same FILE after an interruption and training continues with exactly the
batches that were not yet seen. Prints one JSON line with the epoch's metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import dataops  # noqa: E402
from dataops.loader import Loader  # noqa: E402


class SaveLoaderState(keras.callbacks.Callback):
    """Write the loader state after each training batch: Keras counts steps, the loader turns them into a position."""

    def __init__(self, loader: Loader, path: Path, start: dataops.LoaderState | None) -> None:
        super().__init__()
        self.loader, self.path, self.start = loader, path, start

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        state = self.loader.state_after(batch + 1, start=self.start)
        self.path.write_text(state.to_json() + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/tfrecords", help="Dataset folder (ignored with --repo).")
    p.add_argument("--repo", help="A DVC repository: load its dataset at --rev.")
    p.add_argument("--rev", default="HEAD", help="Git revision (tag, branch, commit) with --repo.")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--state", type=Path, help="Save/resume the loader position in this file.")
    args = p.parse_args(argv)

    source = {"source": args.rev, "repo": args.repo} if args.repo else {"source": args.data}
    common = dict(batch_size=args.batch_size, supervised=("image", "label"))
    train = Loader(split="train", shuffle=True, seed=args.seed, **source, **common)
    start = None
    if args.state is not None and args.state.exists():
        start = dataops.LoaderState.from_json(args.state.read_text())
    val = dataops.load(split="validation", **source, **common)
    num_classes = train.metadata.feature("label").num_classes or 2
    height, width, channels = (int(d or 0) for d in train.metadata.feature("image").shape)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential(
        [
            keras.Input((height, width, channels)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(num_classes),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [SaveLoaderState(train, args.state, start)] if args.state else []
    history = model.fit(
        train.dataset(state=start),
        validation_data=val,
        epochs=1,
        shuffle=False,  # the loader shuffles (deterministically, resumably)
        verbose=2,
        callbacks=callbacks,
    )
    result = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
    result["train_batches"] = train.num_batches(start)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
