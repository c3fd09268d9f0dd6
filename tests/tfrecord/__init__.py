"""Tests of `dataops.tfrecord`: the codec, shard indexes, TFDS reading our directories."""
