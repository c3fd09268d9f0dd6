"""Images read exactly: bit depth, alpha, channels, size bounds, and the TensorFlow serving twin.

Every image is made inside the test (PIL, NumPy, or a hand-written PNG where Pillow cannot write
the format, e.g. 16-bit RGB); expected values come from the formulas and from TensorFlow's own
decoders, never from `dataops.imaging` itself.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from dataops.config import ImageFeature, parse_params
from dataops.errors import ConfigError, DatasetError
from dataops.imaging.decode import ImageDecodeError, decode_image
from dataops.imaging.store import encode_pixels
from dataops.imaging.twin import serving_fn
from dataops.loader import load
from dataops.metadata import read_metadata
from dataops.stages.ingest import run_ingest
from dataops.stages.preprocess import run_preprocess
from dataops.stages.serialize import run_serialize
from dataops.tools.export import run_export
from tests.support.project import REPO, run_cli


def png(arr: np.ndarray, bits: int, ctype: int, plte: bytes = b"", trns: bytes = b"") -> bytes:
    """A PNG written by hand (filter 0): any bit depth and colour type, unlike Pillow."""
    h = arr.shape[0]
    if bits >= 8:
        raw = np.ascontiguousarray(arr, dtype=">u2" if bits == 16 else "u1").view(np.uint8)
        raw = raw.reshape(h, -1)
    else:
        raw = arr.reshape(h, -1).astype(np.uint8)  # already packed rows
    w = arr.shape[1] if bits >= 8 else int(arr.shape[1] * 8 // bits)
    body = b"".join(b"\x00" + raw[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, ctype, 0, 0, 0))
    if plte:
        out += chunk(b"PLTE", plte)
    if trns:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def pil_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def feat(**kw) -> ImageFeature:
    return ImageFeature(kind="image", name="image", **kw)


def reason_of(data: bytes, f: ImageFeature) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data, f)
    return err.value


GRADIENT16 = (np.arange(256, dtype=np.int64) * 65535 // 255 + np.arange(256) % 7).clip(0, 65535)
GRADIENT16 = GRADIENT16.astype(np.uint16).reshape(16, 16)
RGB16 = np.stack([GRADIENT16, GRADIENT16[::-1], GRADIENT16.T], axis=2)


# --- bit depth ------------------------------------------------------------------------------


def test_16bit_png_under_uint8_is_scaled_exactly_not_clipped():
    for data, values in [
        (pil_bytes(Image.fromarray(GRADIENT16)), GRADIENT16[..., None]),
        (png(RGB16, 16, 2), RGB16),
    ]:
        got = decode_image(data, feat(channels=values.shape[2], size=[16, 16]))
        assert got.dtype == np.uint8
        assert (got == np.round(values / 257).astype(np.uint8)).all()
        assert len(np.unique(got)) == 256  # clipping to 8 bits left 2 distinct values


def test_16bit_png_under_uint16_is_kept_exactly():
    gray16 = pil_bytes(Image.fromarray(GRADIENT16))
    alpha = GRADIENT16[::-1, ::-1]
    cases = [
        (gray16, feat(channels=1, dtype="uint16"), GRADIENT16[..., None]),
        (png(RGB16, 16, 2), feat(dtype="uint16"), RGB16),
        (png(np.dstack([RGB16, alpha]), 16, 6), feat(dtype="uint16", channels=4), None),
        (
            png(np.dstack([GRADIENT16, alpha]), 16, 4),
            feat(dtype="uint16", channels=4, convert_gray=True),
            np.dstack([GRADIENT16, GRADIENT16, GRADIENT16, alpha]),
        ),
    ]
    for data, f, want in cases:
        got = decode_image(data, f)
        ref = tf.io.decode_png(data, channels=f.channels, dtype=tf.uint16).numpy()
        assert got.dtype == np.uint16 and (got == ref).all()
        if want is not None:
            assert (got == want).all()


def test_8bit_source_under_uint16_is_multiplied_by_257():
    x = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    got = decode_image(pil_bytes(Image.fromarray(x)), feat(dtype="uint16"))
    assert (got == x.astype(np.uint16) * 257).all()


def test_float32_keeps_the_scale_semantics():
    x = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    data = pil_bytes(Image.fromarray(x))
    assert (decode_image(data, feat(dtype="float32")) == x.astype(np.float32) / 255).all()
    assert (decode_image(data, feat(dtype="float32", scale=False)) == x).all()
    deep = decode_image(png(RGB16, 16, 2), feat(dtype="float32"))
    assert (deep == RGB16.astype(np.float32) / np.float32(65535)).all()


# --- alpha ----------------------------------------------------------------------------------

RGBA = np.zeros((2, 3, 4), np.uint8)
RGBA[..., :3] = [
    [[200, 10, 30], [0, 255, 0], [9, 9, 9]],
    [[50, 60, 70], [1, 2, 3], [255, 255, 255]],
]
RGBA[..., 3] = [[255, 0, 128], [255, 64, 255]]  # one transparent, two translucent pixels


def _composite(color: np.ndarray, a: np.ndarray, bg: list[int]) -> np.ndarray:
    v = color.astype(np.int64) * a[..., None] + np.asarray(bg) * (255 - a[..., None])
    return np.floor(v / 255 + 0.5).astype(np.uint8)


def test_rgba_under_each_alpha_policy():
    data = pil_bytes(Image.fromarray(RGBA, "RGBA"))
    err = reason_of(data, feat())
    assert err.reason == "transparent_image"
    assert err.message == (
        "image has 3 transparent or translucent pixels of 6; set the feature's "
        "`alpha: composite` (onto `background: [r, g, b]`), `alpha: drop` (store the hidden "
        "colours) or `alpha: keep` with `channels: 4`"
    )
    assert (decode_image(data, feat(alpha="drop")) == RGBA[..., :3]).all()
    assert (decode_image(data, feat(channels=4)) == RGBA).all()
    want = _composite(RGBA[..., :3], RGBA[..., 3].astype(np.int64), [255, 128, 0])
    got = decode_image(data, feat(alpha="composite", background=[255, 128, 0]))
    assert (got == want).all()
    assert (got[0, 1] == [255, 128, 0]).all()  # the transparent pixel shows the background only
    opaque = RGBA.copy()
    opaque[..., 3] = 255
    applied: set[str] = set()
    out = decode_image(pil_bytes(Image.fromarray(opaque, "RGBA")), feat(), applied)
    assert (out == opaque[..., :3]).all() and applied == {"opaque_alpha_removed"}


def test_palette_with_transparency_goes_through_rgba():
    palette = [200, 10, 30, 0, 255, 0, 9, 9, 9]
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(palette)
    data = pil_bytes(im, transparency=1)  # index 1 (green) is transparent
    rgb = np.asarray(palette, np.uint8).reshape(3, 3)[idx]
    alpha = np.where(idx == 1, 0, 255)
    assert reason_of(data, feat()).reason == "transparent_image"
    applied: set[str] = set()
    got = decode_image(data, feat(alpha="composite"), applied)
    assert (got == _composite(rgb, alpha, [0, 0, 0])).all()
    assert applied == {"palette_to_rgb", "alpha_composited"}
    assert (decode_image(data, feat(channels=4)) == np.dstack([rgb, alpha])).all()
    assert (decode_image(data, feat(alpha="drop")) == rgb).all()


def test_png_colour_key_is_transparency_too():
    x = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    data = png(x, 8, 2, trns=struct.pack(">HHH", 4, 5, 6))
    assert reason_of(data, feat()).reason == "transparent_image"
    assert (decode_image(data, feat(channels=4))[..., 3] == [[255, 0]]).all()


# --- channels -------------------------------------------------------------------------------


def test_grayscale_under_three_channels_needs_convert_gray():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    data = pil_bytes(Image.fromarray(g, "L"))
    err = reason_of(data, feat())
    assert err.reason == "wrong_channels"
    assert "set the feature's `convert_gray: true`" in err.message
    applied: set[str] = set()
    got = decode_image(data, feat(convert_gray=True), applied)
    assert (got == np.dstack([g, g, g])).all() and applied == {"gray_to_rgb"}


def test_rgb_under_one_channel_is_itu_601_luma():
    x = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = pil_bytes(Image.fromarray(x))
    want = (x.astype(np.int64) @ np.array([19595, 38470, 7471]) + 32768) >> 16
    got = decode_image(data, feat(channels=1))
    assert (got[..., 0] == want).all()
    assert (got[..., 0] == np.asarray(Image.fromarray(x).convert("L"))).all()  # Pillow's "L"


def test_cmyk_jpeg_is_converted_to_rgb_as_tensorflow_does():
    cmyk = np.random.default_rng(1).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    data = pil_bytes(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95)
    decoded = np.asarray(Image.open(io.BytesIO(data))).astype(np.int64)  # CMYK as stored
    nk = 255 - decoded[..., 3:]
    applied: set[str] = set()
    got = decode_image(data, feat(), applied)
    assert (got == (255 - decoded[..., :3]) * nk // 255).all()
    ref = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    assert (got == ref).all() and applied == {"cmyk_to_rgb"}


# --- bounds ---------------------------------------------------------------------------------


def big_png(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A 1-bit gray PNG of one colour: valid and tiny however large its dimensions."""
    row = b"\x00" + bytes((width + 7) // 8)
    if idat is None:
        z = zlib.compressobj(9)
        idat = b"".join(z.compress(row * 1000) for _ in range(height // 1000))
        idat += z.compress(row * (height % 1000)) + z.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    head = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def tiff16_rgb(x: np.ndarray) -> bytes:
    """An uncompressed 16-bit RGB TIFF (Pillow opens it as 8-bit RGB, keeping high bytes)."""
    h, w, _ = x.shape
    data = x.astype("<u2").tobytes()
    tags = [(256, w), (257, h), (258, None), (259, 1), (262, 2), (273, None), (277, 3)]
    tags += [(278, h), (279, len(data))]
    bps_at = 8 + 2 + len(tags) * 12 + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, value in tags:
        if tag == 258:
            out += struct.pack("<HHII", tag, 3, 3, bps_at)
        elif tag in (273, 279):
            out += struct.pack("<HHII", tag, 4, 1, bps_at + 6 if tag == 273 else value)
        else:
            out += struct.pack("<HHIHH", tag, 3, 1, value, 0)
    return out + struct.pack("<IHHH", 0, 16, 16, 16) + data


def test_16bit_colour_that_pillow_would_truncate_is_refused():
    err = reason_of(tiff16_rgb(RGB16[:4, :4]), feat())
    assert (err.reason, err.message) == (
        "unreadable_image",
        "cannot decode image: 16-bit colour TIFF (RGB;16L) is read at full depth only from "
        "PNG; convert the image to 16-bit PNG",
    )


def test_size_is_checked_before_any_pixel_is_decoded():
    junk = big_png(9000, 9000, idat=b"not zlib at all")  # 81 Mpx > 64 Mpx default
    err = reason_of(junk, feat(convert_gray=True))
    assert err.reason == "image_too_large"
    assert err.message == (
        "image is 9000x9000 = 81000000 pixels, more than max_pixels 67108864; "
        "raise the feature's `max_pixels` (at most 134217728) or shrink the image"
    )
    assert reason_of(big_png(40, 40), feat(convert_gray=True, max_pixels=1599)).reason == (
        "image_too_large"
    )
    long = reason_of(big_png(70000, 1), feat(convert_gray=True, size=[1, 1000]))
    assert (
        long.reason == "image_too_large" and "over 65536 pixels cannot be resized" in long.message
    )
    assert decode_image(big_png(40, 40), feat(convert_gray=True, max_pixels=1600)).shape == (
        40,
        40,
        3,
    )


def _image_project(root: Path, images: dict[str, bytes], image: dict, on_error: str = "fail"):
    folder = root / "data" / "sample" / "images" / "a"
    folder.mkdir(parents=True)
    for name, data in images.items():
        (folder / name).write_bytes(data)
    params = parse_params(
        {
            "dataset": {"name": "img", "on_error": on_error},
            "ingest": {
                "key": "id",
                "sources": [
                    {"name": "images", "format": "image_folder", "path": "data/sample/images"}
                ],
            },
            "preprocess": {
                "split": {"seed": 0, "ratios": {"train": 1.0}},
                "features": [
                    {"name": "id", "kind": "key"},
                    {"name": "image", "kind": "image", **image},
                ],
            },
        }
    )
    run_ingest(params.ingest, root, root / "snap", on_error)
    return params


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return big_png(30000, 30000)  # 900 Mpx: Pillow itself refuses it


def test_decompression_bomb_is_a_counted_bad_row_under_skip(tmp_path, bomb):
    ok = pil_bytes(Image.fromarray(np.zeros((4, 4, 3), np.uint8)))
    params = _image_project(
        tmp_path, {"1.png": ok, "2.png": bomb, "3.png": big_png(9000, 9000)}, {}, "skip"
    )
    result = run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre", "skip")
    assert result.skipped == {"image_too_large": 2}
    assert result.num_examples == {"train": 1}


def test_decompression_bomb_is_named_under_fail(tmp_path, bomb):
    ok = pil_bytes(Image.fromarray(np.zeros((4, 4, 3), np.uint8)))
    params = _image_project(tmp_path, {"1.png": ok, "2.png": bomb}, {})
    with pytest.raises(DatasetError) as err:
        run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre")
    msg = str(err.value)
    assert msg.startswith(
        "data/sample/images: a/2.png (id='2'): column 'image': image is larger than Pillow decodes"
    )
    assert msg.endswith("(set dataset.on_error: skip to drop such rows and count them)")
    assert "\n" not in msg


@pytest.mark.parametrize("size", [[0, 32], [-4, 32], [100000, 100000]])
def test_image_size_out_of_bounds_is_refused_at_parse(tmp_path, size):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["preprocess"]["features"][1]["size"] = size
    with pytest.raises(ConfigError) as err:
        parse_params(data, "p.yaml")
    assert str(err.value) == (
        "p.yaml: key 'preprocess.features.1.image.size': each side of `size` "
        f"must be 1..8192 pixels, got {size}"
    )
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    proc = run_cli("preprocess", "--params", "p.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {err.value}"]


def test_alpha_and_channels_must_agree_at_parse():
    with pytest.raises(ValueError, match="set alpha: keep"):
        feat(channels=4, alpha="composite")
    with pytest.raises(ValueError, match="set channels: 4"):
        feat(alpha="keep")
    with pytest.raises(ValueError, match="background is used only with alpha: composite"):
        feat(background=[1, 2, 3])
    assert feat(channels=4).alpha == "keep"


# --- through the pipeline and the loader ----------------------------------------------------


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_uint16_through_preprocess_serialize_and_the_loader(tmp_path, encoding):
    images = {"1.png": png(RGB16, 16, 2), "2.png": png(RGB16[::-1], 16, 2)}
    params = _image_project(tmp_path, images, {"dtype": "uint16", "encoding": encoding})
    run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre")
    run_serialize(params.serialize, "img", tmp_path / "pre", tmp_path / "ds")
    meta = read_metadata(tmp_path / "ds")
    info = meta.feature("image")
    assert (info.dtype, info.shape, info.encoding) == ("uint16", [16, 16, 3], encoding)
    assert info.decode is None  # stored as read: nothing converted
    batch = next(iter(load(tmp_path / "ds", "train", batch_size=8)))
    got = dict(zip([k.decode() for k in batch["id"].numpy()], batch["image"].numpy(), strict=True))
    assert batch["image"].dtype == tf.uint16
    assert (got["1"] == RGB16).all() and (got["2"] == RGB16[::-1]).all()
    serve = serving_fn(meta, "image")
    assert (serve(tf.constant(images["2.png"])).numpy() == got["2"]).all()
    run_export(tmp_path / "ds", "hdf5", tmp_path / "ds.h5")
    with h5py.File(tmp_path / "ds.h5", "r") as h5:
        ids = [k.decode() for k in h5["train/id"][:]]
        pixels = h5["train/image"]
        assert (pixels.dtype, pixels.shape) == (np.uint16, (2, 16, 16, 3))
        assert (pixels[ids.index("2")] == RGB16[::-1]).all()


def test_conversions_are_recorded_in_the_metadata(tmp_path):
    g = np.arange(36, dtype=np.uint8).reshape(6, 6) * 7
    images = {
        "1.png": pil_bytes(Image.fromarray(g, "L")),
        "2.png": pil_bytes(Image.fromarray(RGBA, "RGBA")),
        "3.png": png(RGB16, 16, 2),
    }
    image = {"size": [4, 4], "convert_gray": True, "alpha": "composite", "background": [9, 9, 9]}
    params = _image_project(tmp_path, images, image)
    run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre")
    run_serialize(params.serialize, "img", tmp_path / "pre", tmp_path / "ds")
    meta = read_metadata(tmp_path / "ds")
    decode = meta.feature("image").decode
    assert decode is not None and decode.background == [9, 9, 9]
    assert decode.conversions == [
        "16bit_to_8bit",
        "alpha_composited",
        "gray_to_rgb",
        "resized",
    ]
    stored = {
        k.decode(): v
        for b in load(tmp_path / "ds", "train", batch_size=8)
        for k, v in zip(b["id"].numpy(), b["image"].numpy(), strict=True)
    }
    serve = serving_fn(meta, "image")
    for name, data in images.items():
        assert (serve(tf.constant(data)).numpy() == stored[name[0]]).all(), name


def test_default_8bit_rgb_png_bytes_are_unchanged():
    """The demo's case (8-bit RGB PNG, already the declared size) stores the same bytes as the
    code before `dataops.imaging` did: Pillow's RGB pixels re-encoded at compress level 6."""
    x = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = pil_bytes(Image.fromarray(x), compress_level=9)
    f = feat(size=[32, 32], encoding="png")
    applied: set[str] = set()
    stored = encode_pixels(decode_image(data, f, applied), f)
    before = pil_bytes(Image.open(io.BytesIO(data)).convert("RGB"), compress_level=6)
    assert stored == before and applied == set()


# --- frames -------------------------------------------------------------------------------

FRAMES = [np.full((4, 5, 3), v, np.uint8) for v in (10, 20, 30)]
MULTI_FRAME = "the feature stores one image per row: extract the frame you want (or store each frame as its own image)"


def animated(fmt: str, frames: list[np.ndarray] = FRAMES, **kw) -> bytes:
    ims = [Image.fromarray(x) for x in frames]
    return pil_bytes(ims[0], fmt, save_all=True, append_images=ims[1:], **kw)


def apng_one_frame(x: np.ndarray) -> bytes:
    """An APNG whose animation is its one (default) image: acTL says 1 frame, fcTL before IDAT."""
    plain = png(x, 8, 2)
    h, w = x.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    extra = chunk(b"acTL", struct.pack(">II", 1, 0))
    extra += chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, w, h, 0, 0, 1, 10, 0, 0))
    ihdr_end = 8 + 8 + 13 + 4
    return plain[:ihdr_end] + extra + plain[ihdr_end:]


@pytest.mark.parametrize(
    ("fmt", "kw", "frames"),
    [
        ("GIF", {}, 3),
        ("PNG", {}, 3),  # APNG, the default image is the first frame
        ("PNG", {"default_image": True}, 3),  # APNG, the default image is not animated
        ("TIFF", {}, 3),  # multi-page
        ("WEBP", {"lossless": True}, 3),
    ],
)
def test_an_image_of_several_frames_is_a_bad_row_not_its_first_frame(fmt, kw, frames):
    err = reason_of(animated(fmt, **kw), feat())
    assert err.reason == "multi_frame_image"
    assert err.message == (
        f"image is an animated or multi-page {fmt} of {frames} frames; {MULTI_FRAME}"
    )


def test_single_frame_files_of_animation_formats_are_read():
    for fmt in ("GIF", "PNG", "TIFF", "WEBP"):
        assert (decode_image(animated(fmt, FRAMES[:1]), feat()) == FRAMES[0]).all(), fmt
    one = apng_one_frame(FRAMES[1])
    assert (decode_image(one, feat()) == FRAMES[1]).all()
    assert (serving_fn(feat())(tf.constant(one)).numpy() == FRAMES[1]).all()


def test_an_mpo_is_read_as_the_jpeg_it_shows():
    """A camera's MPO: a JPEG with a preview appended; every JPEG decoder shows the first image."""
    data = animated("MPO", FRAMES[:2])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    want = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    assert (decode_image(data, feat()) == want).all()
    assert (serving_fn(feat())(tf.constant(data)).numpy() == want).all()


def test_multi_frame_images_are_counted_under_skip_and_named_under_fail(tmp_path):
    ok = pil_bytes(Image.fromarray(FRAMES[0]))
    images = {"1.png": ok, "2.gif": animated("GIF"), "3.png": animated("PNG")}
    params = _image_project(tmp_path / "skip", images, {}, "skip")
    result = run_preprocess(params.preprocess, tmp_path / "skip/snap", tmp_path / "pre", "skip")
    assert result.skipped == {"multi_frame_image": 2}
    assert result.num_examples == {"train": 1}
    params = _image_project(tmp_path / "fail", images, {})
    with pytest.raises(DatasetError) as err:
        run_preprocess(params.preprocess, tmp_path / "fail/snap", tmp_path / "pre2")
    assert str(err.value) == (
        "data/sample/images: a/2.gif (id='2'): column 'image': image is an animated or "
        f"multi-page GIF of 3 frames; {MULTI_FRAME} "
        "(set dataset.on_error: skip to drop such rows and count them)"
    )


# --- the serving twin -----------------------------------------------------------------------


def _jpeg(mode: str, subsampling: int) -> bytes:
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.integers(-30, 31, (23, 37, 3)), axis=1).astype(np.uint8)
    return pil_bytes(Image.fromarray(x).convert(mode), "JPEG", quality=85, subsampling=subsampling)


TWIN_IMAGES = {
    "rgb8": pil_bytes(
        Image.fromarray(np.random.default_rng(4).integers(0, 256, (19, 29, 3), dtype=np.uint8))
    ),
    "rgb16": png(RGB16, 16, 2),
    "gray16": pil_bytes(Image.fromarray(GRADIENT16)),
    "rgba": pil_bytes(Image.fromarray(RGBA, "RGBA")),
    "jpeg420": _jpeg("RGB", 2),
    "jpeg444": _jpeg("RGB", 0),
    "jpeg_gray": _jpeg("L", 0),
    "palette_trns": png(
        np.array([[0, 1, 2], [2, 1, 0]], np.uint8), 8, 3, plte=bytes(range(9)), trns=b"\x00\x80"
    ),
    "key_trns": png(RGBA[..., :3], 8, 2, trns=struct.pack(">HHH", 9, 9, 9)),
    "ga16": png(np.dstack([GRADIENT16, GRADIENT16[::-1]]), 16, 4),
    "gray2": png(np.array([[0b00011011, 0b11100100]], np.uint8), 2, 0),
    "gray2_key": png(np.array([[0b00011011, 0b11100100]], np.uint8), 2, 0, trns=b"\x00\x01"),
    "rgb16_key": png(RGB16, 16, 2, trns=struct.pack(">HHH", *RGB16[3, 5])),
    "cmyk": pil_bytes(
        Image.fromarray(
            np.random.default_rng(5).integers(0, 256, (9, 11, 4), dtype=np.uint8), "CMYK"
        ),
        "JPEG",
    ),
}
TWIN_FEATURES = [
    dict(convert_gray=True, alpha="composite", background=[10, 200, 30]),
    dict(convert_gray=True, alpha="drop", size=[7, 13]),
    dict(channels=1, alpha="composite", size=[40, 5]),
    dict(channels=4, convert_gray=True, size=[16, 16], dtype="uint16"),
    dict(convert_gray=True, alpha="composite", size=[3, 64], dtype="float32"),
    dict(channels=1, alpha="drop", dtype="float32", scale=False),
]


def test_the_tensorflow_twin_gives_the_stored_pixels_bit_for_bit():
    for kw in TWIN_FEATURES:
        f = feat(**kw)
        fn = serving_fn(f)
        for name, data in TWIN_IMAGES.items():
            want = decode_image(data, f)
            got = fn(tf.constant(data)).numpy()
            assert got.dtype == want.dtype and got.shape == want.shape, (name, kw)
            assert np.array_equal(got, want), (name, kw)


def test_the_twin_refuses_what_the_pipeline_refuses():
    fn = serving_fn(feat())
    for data, reason in [
        (TWIN_IMAGES["rgba"], "transparent_image"),
        (TWIN_IMAGES["jpeg_gray"], "wrong_channels"),
        (big_png(9000, 9000, idat=b"junk"), "image_too_large"),
        (animated("PNG"), "multi_frame_image"),
        (animated("PNG", default_image=True), "multi_frame_image"),
    ]:
        assert reason_of(data, feat()).reason == reason
        with pytest.raises(tf.errors.InvalidArgumentError, match=reason):
            fn(tf.constant(data))
