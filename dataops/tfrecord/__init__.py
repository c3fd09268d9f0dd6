"""The on-disk format of a serialized dataset, without TensorFlow where it can be.

`codec` (the `tf.train.Example` wire format and TFRecord framing, a batch at a time, and
record iteration), `shard_index` (the CRC-checked block index beside each shard), `spec`
(the `tf.io.parse_example` spec and decoding, derived from `metadata.json`), `tfds_info`
(the files that let TFDS read a dataset directory) and `writer` (a shard file: compression,
sha256, index; and the threads that write a split). File names are `dataops.naming`'s.
"""
