"""Images read exactly: decode, convert and resize with integer arithmetic, and its TensorFlow twin.

`decode_image(data, f)` turns the bytes of one image into the pixels the dataset stores,
`(H, W, C)` in the feature's dtype, or raises `ImageDecodeError(reason, message)` (a bad row).
Every step is exact integer arithmetic, in this order, in the source's own depth (8 or 16 bits):

1. **Decode** with Pillow (JPEG: libjpeg-turbo, ISLOW DCT, fancy upsampling; 16-bit PNG at full
   depth). The size is checked against `max_pixels` before any pixel is decoded. An image of
   several frames (animated GIF, APNG or WebP, multi-page TIFF) is a bad row
   (`multi_frame_image`), never silently its first frame. Palette images
   are expanded to RGB (RGBA when they have transparency); a PNG colour key (tRNS) becomes
   alpha; CMYK is converted as R = floor((255 - C)(255 - K) / 255) (libjpeg's Adobe convention,
   what `tf.io.decode_jpeg` does; no colour management). EXIF orientation is not applied.
2. **Channels.** Gray to RGB only with `convert_gray: true` (replicated), else `wrong_channels`;
   RGB to gray (`channels: 1`) by ITU-R 601-2 luma in Pillow's fixed point:
   L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
3. **Alpha** by the feature's policy: `error` (default) refuses any non-opaque pixel, `drop`,
   `composite` (v = round((v a + bg (M - a)) / M), M = 255 or 65535), `keep` (4th channel).
   Fully opaque alpha is removed under every policy but `keep`.
4. **Resize** (only when `size` differs): separable triangle filter (bilinear, antialiased:
   the support grows with the reduction, as Pillow's BILINEAR and `tf.image.resize(...,
   antialias=True)`), weights quantized to 22 bits with exactly-summing cumulative rounding,
   width first, 16 guard bits between the passes, round half up. All in int64, so any
   implementation of the same formulas gives the same bits.
5. **Depth**: `uint8` stores round(v / 257) of 16-bit sources, `uint16` stores v * 257 of 8-bit
   ones, `float32` divides by 255 (65535 for 16-bit sources) when `scale`.

`tf_decode_image(data, f)` is the same function in TensorFlow ops (`tf.io.decode_png`,
`tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")` and the same integer formulas), and
`serving_fn(meta, name)` wraps it for a dataset: given the raw image bytes at serving time it
returns exactly the pixels the dataset stores (tested bit for bit on PNG and JPEG; other formats
are decoded by Pillow in the pipeline and have no twin). TensorFlow is imported only there.

Modules: `arith` (the integer formulas — resize taps, luma — written once for NumPy and
TensorFlow arrays), `decode` (Pillow decoding and `decode_image`), `store` (the stored bytes
and the `FeatureInfo` of an image feature) and `twin` (`tf_decode_image`, `serving_fn`).
"""
