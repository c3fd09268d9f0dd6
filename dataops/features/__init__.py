"""Feature kinds: everything that depends on what kind a feature is lives in this package.

* `registry.feature_for(model)` — the class of a `preprocess.features` entry of `params.yaml`
  (`key`, `numeric`, `tensor`, `categorical`, `text`, `sequence`, `image`; one module each).
  It owns what preprocess does with the feature: its `FeatureInfo`s, reading and checking its
  column from Arrow, fitting (partial fit per batch → merge → finalize; see `base.py`) and
  transforming a batch. `preprocess.py` is a driver over these classes.
* `stored.stored_feature(info)` — the class of a feature of `metadata.json` (a `FeatureInfo`:
  `tensor`, `sequence`, `text`, `bytes`, `image`). It owns what readers do: the
  `tf.io.parse_example` spec, decoding, the Arrow and HDF5 form of an export, and the
  statistics validate checks. `spec.py`, `export.py` and `validate.py` ask it.

No module outside this package branches on a feature's kind. The submodules are imported
on use, so importing this package costs nothing.
"""
