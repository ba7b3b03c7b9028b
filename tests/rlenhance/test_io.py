"""Tests for rlenhance.io: loading, saving, listing and tensor conversion of images.

References: files are written with Pillow / OpenCV / tifffile directly and decoded by those
libraries (or by Pillow's ``ImageOps.exif_transpose``, OpenCV's ``cvtColor``) to get the
expected arrays.
"""

from __future__ import annotations

import contextlib
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

import rlenhance.io as rio
import rlenhance.io.png as rio_png
import rlenhance.io.read as rio_read
import rlenhance.io.write as rio_write
from rlenhance.errors import ImageError
from rlenhance.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    image_to_tensor,
    list_images,
    load_image,
    save_image,
    tensor_to_image,
)

H, W = 24, 32
EIGHT_BIT_TOL = 1e-6
SIXTEEN_BIT_TOL = 1e-6


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def rgb8(rng, shape=(H, W)):
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


def rgb16(rng, shape=(H, W)):
    return rng.integers(0, 65536, (*shape, 3), dtype=np.uint16)


def smooth_rgb(shape=(H, W)):
    """A smooth float image (JPEG-friendly)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return np.stack(
        [x / (shape[1] - 1), y / (shape[0] - 1), 0.5 + 0.25 * np.sin(x / 5.0)], axis=2
    ).astype(np.float32)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(width: int, height: int, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(idat))
        + png_chunk(b"IEND", b"")
    )


def add_png_exif(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk (raw TIFF-structured EXIF) right after IHDR."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = exif.tobytes()
    raw = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + png_chunk(b"eXIf", raw) + png[ihdr_end:]


@contextlib.contextmanager
def raises_naming(path: Path, *causes: str) -> Iterator[None]:
    """Expect an ImageError whose message names ``path``'s file and each of ``causes`` (any case)."""
    with pytest.raises(ImageError) as exc_info:
        yield
    message = str(exc_info.value)
    assert path.name in message, message
    for cause in causes:
        assert cause.lower() in message.lower(), message


# ------------------------------------------------------------------------ constants / listing


def test_constants():
    assert IMAGE_EXTENSIONS == (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
    assert DEFAULT_MAX_PIXELS == 100_000_000
    assert issubclass(ImageError, ValueError)


def test_list_images_filters_and_sorts(tmp_path):
    names = ["b.jpg", "a.PNG", "c.JPEG", "d.bmp", "e.tif", "f.TIFF", "notes.txt", ".hidden.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.png").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a directory with an image-like name is not a file
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.PNG", "b.jpg", "c.JPEG", "d.bmp", "e.tif", "f.TIFF"]
    assert all(isinstance(p, Path) and p.parent == tmp_path for p in list_images(str(tmp_path)))


def test_list_images_empty_and_bad_folders(tmp_path):
    assert list_images(tmp_path) == []
    missing = tmp_path / "nowhere"
    with raises_naming(missing, "does not exist"):
        list_images(missing)
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    with raises_naming(a_file, "not a directory"):
        list_images(a_file)


# ------------------------------------------------------------------------ loading: formats


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff"])
def test_load_lossless_8bit_rgb_written_by_pillow(tmp_path, rng, ext):
    src = rgb8(rng)
    path = tmp_path / f"img{ext}"
    Image.fromarray(src).save(path)
    out = load_image(path)
    assert out.dtype == np.float32 and out.shape == (H, W, 3)
    np.testing.assert_allclose(out, src / 255.0, atol=EIGHT_BIT_TOL, rtol=0)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_load_converts_opencv_bgr_to_rgb(tmp_path, rng, ext):
    src = rgb8(rng)
    path = tmp_path / f"img{ext}"
    assert cv2.imwrite(str(path), src[..., ::-1])  # OpenCV writes BGR arrays
    np.testing.assert_allclose(load_image(path), src / 255.0, atol=EIGHT_BIT_TOL, rtol=0)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg"])
def test_load_jpeg_matches_opencv_decode(tmp_path, ext):
    src = (smooth_rgb() * 255).round().astype(np.uint8)
    path = tmp_path / f"img{ext}"
    Image.fromarray(src).save(path, quality=95)
    out = load_image(path)
    assert out.shape == (H, W, 3) and out.dtype == np.float32
    reference = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1] / 255.0
    np.testing.assert_allclose(out, reference, atol=3 / 255, rtol=0)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_load_16bit_rgb_keeps_full_precision(tmp_path, rng, ext):
    src = rgb16(rng)
    path = tmp_path / f"img16{ext}"
    assert cv2.imwrite(str(path), src[..., ::-1])
    out = load_image(path)
    assert out.dtype == np.float32 and out.shape == (H, W, 3)
    np.testing.assert_allclose(out, src / 65535.0, atol=SIXTEEN_BIT_TOL, rtol=0)
    # Pillow alone would keep only the high byte: that would be off by up to 255 levels.
    np.testing.assert_array_equal(np.rint(out * 65535).astype(np.uint16), src)


def test_load_16bit_rgba_png_drops_alpha(tmp_path, rng):
    src = rgb16(rng)
    alpha = rng.integers(0, 65536, (H, W, 1), dtype=np.uint16)
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), np.concatenate([src[..., ::-1], alpha], axis=2))
    np.testing.assert_allclose(load_image(path), src / 65535.0, atol=SIXTEEN_BIT_TOL, rtol=0)


@pytest.mark.parametrize("writer", ["cv2-png", "cv2-tif", "pil-png", "pil-tif"])
def test_load_16bit_gray_expands_and_gray_is_exact(tmp_path, rng, writer):
    src = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    lib, ext = writer.split("-")
    path = tmp_path / f"gray16.{ext}"
    if lib == "cv2":
        assert cv2.imwrite(str(path), src)
    else:
        Image.fromarray(src).save(path)
    out = load_image(path)
    assert out.shape == (H, W, 3)
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], src / 65535.0, atol=SIXTEEN_BIT_TOL, rtol=0)
    gray = load_image(path, gray=True)
    assert gray.shape == (H, W, 1) and gray.dtype == np.float32
    np.testing.assert_array_equal(np.rint(gray[..., 0] * 65535).astype(np.uint16), src)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_load_8bit_gray_expands_and_gray_is_exact(tmp_path, rng, ext):
    src = rng.integers(0, 256, (H, W), dtype=np.uint8)
    path = tmp_path / f"gray{ext}"
    Image.fromarray(src, mode="L").save(path, **({"quality": 95} if ext == ".jpg" else {}))
    expected = np.asarray(Image.open(path)).astype(np.float32) / 255  # Pillow's own decode
    out = load_image(path)
    assert out.shape == (H, W, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], expected)
    gray = load_image(path, gray=True)
    assert gray.shape == (H, W, 1)
    np.testing.assert_array_equal(gray[..., 0], expected)


def test_load_bilevel_image(tmp_path):
    bits = np.zeros((H, W), dtype=bool)
    bits[::2, 1::3] = True
    path = tmp_path / "bits.png"
    Image.fromarray(bits).convert("1").save(path)
    out = load_image(path, gray=True)
    np.testing.assert_array_equal(out[..., 0], bits.astype(np.float32))


def test_gray_of_colour_file_is_bt601_luma(tmp_path, rng):
    src = rgb8(rng)
    path = tmp_path / "colour.png"
    Image.fromarray(src).save(path)
    gray = load_image(path, gray=True)
    assert gray.shape == (H, W, 1) and gray.dtype == np.float32
    reference = cv2.cvtColor(src.astype(np.float32) / 255, cv2.COLOR_RGB2GRAY)  # BT.601 weights
    np.testing.assert_allclose(gray[..., 0], reference, atol=1e-6, rtol=0)


def test_gray_of_neutral_colour_file_is_exact(tmp_path, rng):
    values = rng.integers(0, 256, (H, W), dtype=np.uint8)
    path = tmp_path / "neutral.png"
    Image.fromarray(np.repeat(values[..., None], 3, axis=2)).save(path)
    np.testing.assert_array_equal(
        load_image(path, gray=True)[..., 0], values.astype(np.float32) / np.float32(255)
    )


def test_load_rgba_drops_alpha(tmp_path, rng):
    src = rgb8(rng)
    alpha = rng.integers(0, 256, (H, W, 1), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(np.concatenate([src, alpha], axis=2), mode="RGBA").save(path)
    np.testing.assert_allclose(load_image(path), src / 255.0, atol=EIGHT_BIT_TOL, rtol=0)


def test_load_la_drops_alpha(tmp_path, rng):
    lum = rng.integers(0, 256, (H, W), dtype=np.uint8)
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(np.stack([lum, alpha], axis=2), mode="LA").save(path)
    out = load_image(path)
    np.testing.assert_allclose(out, np.repeat(lum[..., None], 3, 2) / 255.0, atol=EIGHT_BIT_TOL)
    np.testing.assert_allclose(load_image(path, gray=True)[..., 0], lum / 255.0, atol=EIGHT_BIT_TOL)


@pytest.mark.parametrize(
    ("ext", "transparency"), [(".png", False), (".png", True), (".bmp", False), (".tif", False)]
)
def test_load_palette_image(tmp_path, rng, ext, transparency):
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = rng.integers(0, 16, (H, W), dtype=np.uint8)
    im = Image.fromarray(indices, mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    path = tmp_path / f"pal{ext}"
    im.save(path, **({"transparency": 3} if transparency else {}))
    assert Image.open(path).mode == "P"
    np.testing.assert_allclose(load_image(path), palette[indices] / 255.0, atol=EIGHT_BIT_TOL)


# ------------------------------------------------------------------------ EXIF orientation


def quadrant_image(height: int, width: int) -> np.ndarray:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[: height // 2, : width // 2] = (255, 0, 0)
    img[: height // 2, width // 2 :] = (0, 255, 0)
    img[height // 2 :, : width // 2] = (0, 0, 255)
    img[height // 2 :, width // 2 :] = (255, 255, 255)
    return img


def test_jpeg_exif_orientation_6_is_rotated_clockwise(tmp_path):
    height, width = 32, 48
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    Image.fromarray(quadrant_image(height, width)).save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (width, height, 3)
    # After a clockwise turn, red (stored top-left) is top-right, blue (bottom-left) is top-left.
    np.testing.assert_allclose(out[2, -3], (1, 0, 0), atol=0.1)
    np.testing.assert_allclose(out[2, 2], (0, 0, 1), atol=0.1)
    np.testing.assert_allclose(out[-3, -3], (0, 1, 0), atol=0.1)
    np.testing.assert_allclose(out[-3, 2], (1, 1, 1), atol=0.1)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, rng, orientation, ext):
    src = rgb8(rng, (6, 10)) if ext != ".jpg" else quadrant_image(16, 24)
    path = tmp_path / f"o{orientation}{ext}"
    if ext == ".tif":
        Image.fromarray(src).save(path, tiffinfo={0x0112: orientation})
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(src).save(path, exif=exif, **({"quality": 95} if ext == ".jpg" else {}))
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")) / 255.0
    np.testing.assert_allclose(load_image(path), reference, atol=EIGHT_BIT_TOL, rtol=0)


def orientation_reference(src: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation with Pillow (on an index image), then gather ``src``."""
    height, width = src.shape[:2]
    index = np.arange(height * width, dtype=np.int32).reshape(height, width)
    upright = Image.fromarray(index).transpose(
        {
            2: Image.Transpose.FLIP_LEFT_RIGHT,
            3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270,
            7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90,
        }[orientation]
    ) if orientation != 1 else Image.fromarray(index)
    return src.reshape(height * width, -1)[np.asarray(upright)]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_png_exif_orientation(tmp_path, rng, orientation):
    src = rgb16(rng, (6, 10))
    ok, encoded = cv2.imencode(".png", src[..., ::-1])
    assert ok
    path = tmp_path / "o16.png"
    path.write_bytes(add_png_exif(encoded.tobytes(), orientation))
    assert Image.open(path).getexif()[0x0112] == orientation
    out = load_image(path)
    expected = orientation_reference(src, orientation) / 65535.0
    np.testing.assert_allclose(out, expected, atol=SIXTEEN_BIT_TOL, rtol=0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_tiff_exif_orientation(tmp_path, rng, orientation):
    tifffile = pytest.importorskip("tifffile")
    src = rgb16(rng, (6, 10))
    path = tmp_path / "o16.tif"
    tifffile.imwrite(
        path, src, photometric="rgb", extratags=[(0x0112, "H", 1, orientation, False)]
    )
    out = load_image(path)
    expected = orientation_reference(src, orientation) / 65535.0
    np.testing.assert_allclose(out, expected, atol=SIXTEEN_BIT_TOL, rtol=0)


@pytest.mark.parametrize("ext, orientation", [(".png", 1), (".jpg", 6), (".bmp", 1), (".png", 3)])
def test_samples_are_the_float_image_before_scaling(tmp_path, rng, ext, orientation):
    """load_image(samples=True): the decoded integer samples, upright, writable; floats are them / 255."""
    path = tmp_path / f"s{ext}"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb8(rng, (6, 10))).save(path, **({"exif": exif} if ext != ".bmp" else {}))
    samples = load_image(path, samples=True)
    assert samples.dtype == np.uint8 and samples.flags.writeable
    np.testing.assert_array_equal(samples.astype(np.float32) / np.float32(255), load_image(path))


def test_samples_of_sixteen_bit_and_gray_files(tmp_path, rng):
    colour, gray = tmp_path / "c16.png", tmp_path / "g8.png"
    cv2.imwrite(str(colour), rgb16(rng)[..., ::-1])
    Image.fromarray(rgb8(rng)[..., 0]).save(gray)
    samples16 = load_image(colour, samples=True)
    assert samples16.dtype == np.uint16
    np.testing.assert_array_equal(samples16.astype(np.float32) / np.float32(65535), load_image(colour))
    samples8 = load_image(gray, samples=True)
    assert samples8.shape == (H, W, 3) and samples8.dtype == np.uint8
    np.testing.assert_array_equal(samples8.astype(np.float32) / np.float32(255), load_image(gray))
    with pytest.raises(ValueError, match="choose one"):
        load_image(gray, samples=True, gray=True)


def test_orientation_helper_matches_pillow_on_all_tags(rng):
    src = rgb8(rng, (5, 7))
    for orientation in range(1, 9):
        np.testing.assert_array_equal(
            rio_read._apply_orientation(src, orientation), orientation_reference(src, orientation)
        )


# ------------------------------------------------------------------------ loading: bad input


def test_missing_file(tmp_path):
    path = tmp_path / "absent.png"
    with raises_naming(path, "does not exist"):
        load_image(path)


def test_directory_path(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    with raises_naming(path, "directory"):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with raises_naming(path, "empty", "0 bytes"):
        load_image(path)


@pytest.mark.parametrize("content", [b"hello, this is text\n" * 10, bytes(range(256)) * 4])
def test_not_an_image(tmp_path, content):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with raises_naming(path, "not a PNG, JPEG, BMP or TIFF image"):
        load_image(path)


def test_unsupported_format_is_refused(tmp_path, rng):
    path = tmp_path / "anim.gif"
    Image.fromarray(rgb8(rng)).save(path)
    with raises_naming(path, "not a PNG, JPEG, BMP or TIFF image"):
        load_image(path)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_8bit(tmp_path, rng, ext):
    path = tmp_path / f"cut{ext}"
    Image.fromarray(rgb8(rng, (64, 64))).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with raises_naming(path, "truncated or corrupt"):
        load_image(path)


@pytest.mark.parametrize("writer", ["cv2-png", "tifffile-tif"])
def test_truncated_16bit(tmp_path, rng, writer):
    lib, ext = writer.split("-")
    path = tmp_path / f"cut16.{ext}"
    src = rgb16(rng, (64, 64))
    if lib == "cv2":
        assert cv2.imwrite(str(path), src)
    else:
        pytest.importorskip("tifffile").imwrite(path, src, photometric="rgb")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(data) // 3])  # header kept, pixel data cut
    with raises_naming(path, "truncated or corrupt"):
        load_image(path)


def test_corrupt_png_data(tmp_path, rng):
    path = tmp_path / "corrupt.png"
    Image.fromarray(rgb8(rng, (64, 64))).save(path)
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    for offset in range(idat + 40, idat + 80):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with raises_naming(path, "truncated or corrupt"):
        load_image(path)


@pytest.mark.parametrize("kind, where", [(b"zTXt", "before IDAT"), (b"iTXt", "before IDAT"), (b"zTXt", "after IDAT")])
def test_text_chunk_over_pillows_limit_is_an_image_error(tmp_path, rng, kind, where):
    """A text chunk that decompresses past PngImagePlugin.MAX_TEXT_CHUNK: ImageError naming the file
    and the limit (Pillow's ValueError would abort a batch that skips bad files)."""
    from PIL import PngImagePlugin

    path = tmp_path / "text_bomb.png"
    Image.fromarray(rgb8(rng, (8, 8))).save(path)
    data = path.read_bytes()
    text = zlib.compress(b"a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1))
    chunk = png_chunk(kind, b"Comment\0" + (b"\0" if kind == b"zTXt" else b"\x01\x00\0\0") + text)
    at = data.index(b"IDAT") - 4 if where == "before IDAT" else data.index(b"IEND") - 4
    path.write_bytes(data[:at] + chunk + data[at:])
    for samples in (False, True):
        with raises_naming(path, "text chunk", "MAX_TEXT_CHUNK"):
            load_image(path, samples=samples)


def handmade_bmp(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 14 + 40) + info


def test_zero_size_image(tmp_path):
    for name, data in [
        ("zero_w.png", handmade_png(0, 4)),
        ("zero_h.png", handmade_png(4, 0)),
        ("zero.bmp", handmade_bmp(0, 4)),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with raises_naming(path, "zero-size"):
            load_image(path)


def test_zero_size_jpeg_and_tiff(tmp_path, rng):
    jpeg = tmp_path / "ok.jpg"
    Image.fromarray(rgb8(rng, (8, 8))).save(jpeg)
    data = bytearray(jpeg.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = b"\x00\x00"  # height field of the SOF0 segment
    path = tmp_path / "zero.jpg"
    path.write_bytes(bytes(data))
    with raises_naming(path, "zero-size"):
        load_image(path)

    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "zero.tif"
    tifffile.imwrite(path, rgb8(rng, (8, 8)), photometric="rgb")
    data = bytearray(path.read_bytes())
    assert data[:2] == b"II"
    for field_type, fmt in ((3, "<H"), (4, "<I")):  # ImageWidth stored as SHORT or LONG
        entry = data.find(struct.pack("<HHI", 256, field_type, 1))
        if entry >= 0:
            data[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, 0)
            break
    else:
        pytest.fail("ImageWidth tag not found")
    path.write_bytes(bytes(data))
    with raises_naming(path, "zero-size"):
        load_image(path)


def test_too_many_pixels_checked_from_header(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    path.write_bytes(handmade_png(200_000, 100_000))  # 2e10 pixels, a few bytes on disk

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(rio_read.cv2, "imdecode", no_decoding)
    with raises_naming(path, "max_pixels=100000000", "200000 x 100000"):
        load_image(path)


def test_max_pixels_boundary(tmp_path, rng):
    path = tmp_path / "small.png"
    Image.fromarray(rgb8(rng)).save(path)
    assert load_image(path, max_pixels=H * W).shape == (H, W, 3)
    assert load_image(path, max_pixels=None).shape == (H, W, 3)
    with raises_naming(path, f"max_pixels={H * W - 1}"):
        load_image(path, max_pixels=H * W - 1)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ImageError, match="max_pixels"):
            load_image(path, max_pixels=bad)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_pillow_decompression_bomb_limit_is_replaced_by_max_pixels(tmp_path, rng, monkeypatch, ext):
    path = tmp_path / f"big{ext}"
    src = rgb8(rng)
    Image.fromarray(src).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # image is > 2x Pillow's limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load_image(path)
    np.testing.assert_allclose(out, src / 255.0, atol=EIGHT_BIT_TOL)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", (H * W) // 2 + 1)  # warning zone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(path)
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(path, max_pixels=50)


def test_unsupported_32bit_samples(tmp_path, rng):
    path = tmp_path / "int32.tif"
    Image.fromarray(rng.integers(0, 1000, (H, W), dtype=np.int32)).save(path)
    with raises_naming(path, "unsupported sample format"):
        load_image(path)


# ------------------------------------------------------------------------ saving


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".PNG"])
def test_save_load_round_trip_lossless_8bit(tmp_path, rng, ext):
    img = rng.random((H, W, 3)).astype(np.float32)
    path = tmp_path / f"rt{ext}"
    save_image(path, img)
    out = load_image(path)
    assert np.abs(out - img).max() <= 0.5 / 255 + 1e-6
    # independent decoder, RGB order
    np.testing.assert_allclose(
        cv2.imread(str(path))[..., ::-1] / 255.0, img, atol=0.5 / 255 + 1e-6, rtol=0
    )


@pytest.mark.parametrize("shape, dtype", [((37, 23, 3), np.uint8), ((37, 23), np.uint8), ((29, 31, 3), np.uint16),
                                          ((29, 31), np.uint16), ((1, 1, 3), np.uint8)])
@pytest.mark.parametrize("deflate", ["isal", "zlib"])
def test_png_bands_decode_to_the_samples(tmp_path, rng, monkeypatch, shape, dtype, deflate):
    """PNGs deflated in parallel bands (a few rows each here) are one valid zlib stream: Pillow, OpenCV
    (libpng) and zlib read the samples back exactly, checksums included; with ISA-L and with zlib."""
    if deflate == "zlib":
        monkeypatch.setattr(rio_png, "_deflate", zlib)
        monkeypatch.setattr(rio_png, "_DEFLATE_ARGS", (1, zlib.DEFLATED, -15, 9, zlib.Z_RLE))
    elif rio_png._deflate is zlib:
        pytest.skip("the isal package is not installed")
    monkeypatch.setattr(rio_png, "_PNG_BAND_BYTES", 200)
    samples = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    path = tmp_path / "bands.png"
    save_image(path, samples, bit_depth=samples.itemsize * 8)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded if decoded.ndim == 2 else decoded[..., ::-1], samples)
    np.testing.assert_array_equal(load_image(path, samples=True), samples if samples.ndim == 3
                                  else np.repeat(samples[..., None], 3, axis=2))
    if dtype == np.uint8:
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), samples)


def test_adler32_of_bands_combine_to_that_of_the_whole():
    pieces = [b"", b"a", bytes(range(256)) * 300, b"\xff" * 70000, b"rlenhance"]
    whole, adler = b"", 1
    for piece in pieces:
        adler = rio_png._adler32_combine(adler, zlib.adler32(piece), len(piece))
        whole += piece
        assert adler == zlib.adler32(whole)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg"])
def test_save_jpeg_uses_quality_95(tmp_path, ext):
    img = smooth_rgb()
    path = tmp_path / f"q{ext}"
    save_image(path, img)
    out = load_image(path)
    assert np.abs(out - img).mean() <= 2 / 255  # lossy (4:2:0 chroma subsampling)
    reference = tmp_path / "pillow_q95.jpg"
    Image.fromarray((img * 255).round().astype(np.uint8)).save(reference, quality=95)
    assert Image.open(path).quantization == Image.open(reference).quantization


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_save_load_round_trip_16bit(tmp_path, rng, ext):
    img = rng.random((H, W, 3))  # float64
    path = tmp_path / f"rt16{ext}"
    save_image(path, img, bit_depth=16)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[..., ::-1], np.rint(img * 65535).astype(np.uint16))
    assert np.abs(load_image(path) - img).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1)])
def test_save_gray_writes_grayscale_file(tmp_path, rng, shape):
    img = rng.random(shape).astype(np.float32)
    path = tmp_path / "gray.png"
    save_image(path, img)
    assert Image.open(path).mode == "L"
    out = load_image(path, gray=True)
    assert np.abs(out[..., 0] - img.reshape(H, W)).max() <= 0.5 / 255 + 1e-6


def test_save_integer_inputs(tmp_path, rng):
    u8 = rgb8(rng)
    save_image(tmp_path / "u8.png", u8)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "u8.png")), u8)
    save_image(tmp_path / "u8_16.png", u8, bit_depth=16)
    raw = cv2.imread(str(tmp_path / "u8_16.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(raw, u8.astype(np.uint16) * 257)
    u16 = rgb16(rng)
    save_image(tmp_path / "u16.tif", u16, bit_depth=16)
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / "u16.tif"), cv2.IMREAD_UNCHANGED)[..., ::-1], u16
    )
    save_image(tmp_path / "u16_8.png", u16)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "u16_8.png")), np.rint(u16 / 257).astype(np.uint8)
    )


def test_save_clips_float_values_and_accepts_float16(tmp_path):
    img = np.array([[[-0.5, 0.25, 1.5], [2.0, -1.0, 0.5]]], dtype=np.float16)
    path = tmp_path / "clip.png"
    save_image(path, img)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), [[[0, 64, 255], [255, 0, 128]]])
    save_image(path, img, bit_depth=16)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(raw, [[[0, 16384, 65535], [65535, 0, 32768]]])


@pytest.mark.parametrize("shape", [(3, H, W), (1, 3, H, W), (1, H, W)])
def test_save_torch_tensor(tmp_path, shape):
    t = torch.rand(shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    path = tmp_path / "tensor.png"
    save_image(path, t)
    expected = tensor_to_image(t)
    out = load_image(path, gray=expected.shape[2] == 1)
    assert np.abs(out - expected).max() <= 0.5 / 255 + 1e-6


def test_save_creates_parent_folders(tmp_path, rng):
    path = tmp_path / "a" / "b" / "c.png"
    save_image(path, rgb8(rng))
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.png"]


@pytest.mark.parametrize(
    ("img", "kwargs", "cause"),
    [
        (np.full((4, 4, 3), np.nan, np.float32), {}, "nan"),
        (np.array([[[0.1, np.inf, 0.2]]]), {}, "infinite"),
        (np.zeros((4, 4, 2), np.float32), {}, "shape"),
        (np.zeros((4, 4, 4), np.float32), {}, "shape"),
        (np.zeros((1, 4, 4, 3), np.float32), {}, "shape"),
        (np.zeros((4,), np.float32), {}, "shape"),
        (np.zeros((0, 4, 3), np.float32), {}, "zero-size"),
        (np.zeros((4, 4, 3), np.int32), {}, "dtype"),
        (np.zeros((4, 4, 3), bool), {}, "dtype"),
        ([[0.0, 1.0]], {}, "numpy array or torch tensor"),
        (torch.zeros(5, 4, 4), {}, "tensor shape"),
        (np.zeros((4, 4, 3), np.float32), {"bit_depth": 12}, "bit_depth"),
        (np.zeros((4, 4, 3), np.float32), {"jpeg_quality": 0}, "jpeg_quality"),
    ],
)
def test_save_refuses_bad_arrays(tmp_path, img, kwargs, cause):
    path = tmp_path / "out" / "bad.png"
    with pytest.raises(ImageError) as exc_info:
        save_image(path, img, **kwargs)
    assert cause.lower() in str(exc_info.value).lower(), str(exc_info.value)
    if cause != "jpeg_quality":
        assert path.name in str(exc_info.value)
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder


@pytest.mark.parametrize("name", ["x.gif", "x.webp", "noext", "x.png.txt"])
def test_save_unknown_extension_lists_accepted(tmp_path, rng, name):
    path = tmp_path / name
    with raises_naming(path, "unknown extension", ".png", ".jpg", ".tiff"):
        save_image(path, rgb8(rng))
    assert not path.exists()


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".bmp"])
def test_save_16bit_only_for_png_tiff(tmp_path, rng, ext):
    path = tmp_path / f"x{ext}"
    with raises_naming(path, "bit_depth=16", ".png", ".tif"):
        save_image(path, rgb8(rng), bit_depth=16)
    assert not path.exists()


def test_save_to_directory_path(tmp_path, rng):
    path = tmp_path / "dir.png"
    path.mkdir()
    with raises_naming(path, "directory"):
        save_image(path, rgb8(rng))


@pytest.fixture
def existing(tmp_path, rng):
    path = tmp_path / "keep.png"
    save_image(path, rgb8(rng))
    return path, path.read_bytes()


def assert_untouched(path: Path, original: bytes) -> None:
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_atomic_save_encoder_failure(existing, monkeypatch, rng):
    path, original = existing

    def broken_encoder(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(rio_write, "_encode", broken_encoder)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        save_image(path, rgb8(rng))
    assert_untouched(path, original)


def test_atomic_save_failure_mid_write(existing, monkeypatch, rng):
    path, original = existing
    real_write_bytes = Path.write_bytes
    calls = []

    def half_then_fail(self, data):
        calls.append(self)
        real_write_bytes(self, bytes(data)[: max(1, len(data) // 2)])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match=rf"cannot write {re.escape(str(path))}: No space left on device$"):
        save_image(path, rgb8(rng))
    assert len(calls) == 1 and calls[0] != path  # a partial temp file really existed beside it
    assert not calls[0].exists()
    assert_untouched(path, original)


def test_atomic_save_replace_failure(existing, monkeypatch, rng):
    path, original = existing

    def refuse(*args, **kwargs):
        raise PermissionError("replace refused")

    monkeypatch.setattr(rio_write.os, "replace", refuse)
    with pytest.raises(PermissionError):
        save_image(path, rgb8(rng))
    assert_untouched(path, original)


def test_save_without_overwrite_never_replaces_a_file(existing, monkeypatch, rng):
    """overwrite=False: an existing file is refused up front, and one that appears while the image is
    encoded (another process writing the same name) is kept: the name is claimed create-exclusively."""
    path, original = existing
    with pytest.raises(FileExistsError):
        save_image(path, rgb8(rng), overwrite=False)
    assert_untouched(path, original)
    fresh = path.with_name("fresh.png")
    real_encode = rio_write._encode

    def encode_while_another_writes(*args, **kwargs):
        fresh.write_bytes(b"the other process's image")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(rio_write, "_encode", encode_while_another_writes)
    with pytest.raises(FileExistsError, match="appeared"):
        save_image(fresh, rgb8(rng), overwrite=False)
    assert fresh.read_bytes() == b"the other process's image"
    assert sorted(p.name for p in path.parent.iterdir()) == ["fresh.png", path.name]  # no temporary file left


def test_save_without_overwrite_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch, rng):
    import errno

    import rlenhance.atomic as atomic

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    image = rgb8(rng)
    save_image(tmp_path / "a.png", image, overwrite=False)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
    with pytest.raises(FileExistsError):
        save_image(tmp_path / "a.png", rgb8(rng), overwrite=False)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_save_overwrites_cleanly(existing, rng):
    path, original = existing
    new = rgb8(rng)
    save_image(path, new)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), new)
    assert path.read_bytes() != original
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# ------------------------------------------------------------------------ tensors


def test_image_to_tensor_and_back(rng):
    img = rng.random((H, W, 3))  # float64 in
    t = image_to_tensor(img)
    assert t.shape == (3, H, W) and t.dtype == torch.float32
    np.testing.assert_allclose(t[1].numpy(), img[..., 1], atol=1e-7)
    back = tensor_to_image(t)
    assert back.shape == (H, W, 3) and back.dtype == np.float32
    np.testing.assert_array_equal(back, img.astype(np.float32))
    np.testing.assert_array_equal(tensor_to_image(t[None]), back)


def test_tensor_conversions_copy():
    img = np.zeros((4, 5, 1), np.float32)
    t = image_to_tensor(img)
    t += 1
    assert img.max() == 0
    back = tensor_to_image(t)
    back += 1
    assert t.max() == 1


def test_tensor_to_image_detaches_grad():
    t = torch.rand(3, 4, 5, requires_grad=True)
    out = tensor_to_image(t * 2)
    np.testing.assert_allclose(out, (t * 2).detach().permute(1, 2, 0).numpy(), atol=1e-7)


def test_tensor_conversion_errors():
    with pytest.raises(ImageError, match="float"):
        image_to_tensor(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        image_to_tensor(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="shape"):
        tensor_to_image(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ImageError, match="shape"):
        tensor_to_image(torch.zeros(4, 4))
    with pytest.raises(ImageError, match="floating"):
        tensor_to_image(torch.zeros(3, 4, 4, dtype=torch.uint8))


# --- as_unit_float: the one check of caller-supplied images ------------------------------------------
def test_as_unit_float_scales_integers_and_keeps_good_floats():
    from rlenhance.io import as_unit_float

    np.testing.assert_array_equal(as_unit_float(np.array([0, 51, 255], np.uint8)), np.array([0, 0.2, 1], np.float32))
    assert as_unit_float(np.array([65535], np.uint16))[0] == 1.0
    good = np.linspace(0, 1, 6, dtype=np.float32)
    assert as_unit_float(good) is good  # no copy
    assert as_unit_float(good.astype(np.float64)).dtype == np.float32
    tensor = as_unit_float(torch.tensor([0, 255], dtype=torch.uint8), allow_tensor=True)
    assert tensor.dtype == torch.float32 and tensor.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("bad, message", [
    (np.array([0.5, np.nan]), "image: 1 NaN or infinite value"),
    (np.array([0.5, 1.2]), r"values span \[0.5, 1.2\]"),
    (np.array([True]), "dtype bool"),
    (np.array([3], np.int16), "dtype int16"),
    (np.zeros((0, 3), np.float32), "empty"),
    ([0.5], "expected a numpy array, got list"),
    (torch.zeros(3), "got a torch.Tensor"),
])
def test_as_unit_float_refuses(bad, message):
    from rlenhance.io import as_unit_float

    with pytest.raises(ImageError, match=message):
        as_unit_float(bad)


def test_as_unit_float_noisy_range():
    from rlenhance.io import NOISY_RANGE, as_unit_float

    noisy = np.array([-0.3, 0.5, 1.3], np.float32)
    np.testing.assert_array_equal(as_unit_float(noisy, noisy=True), noisy)  # kept, not clipped
    with pytest.raises(ImageError, match=r"\[-1, 2\]"):
        as_unit_float(np.array([NOISY_RANGE[1] + 0.5]), noisy=True, name="options['noisy']")
    with pytest.raises(ImageError, match=r"^options\['noisy'\]: 1 NaN"):
        as_unit_float(np.array([np.nan]), noisy=True, name="options['noisy']")


# ------------------------------------------------------------------------ arrays from callers


@pytest.mark.parametrize("order", [">", "<"])
def test_non_native_byte_order_uint16_is_accepted(tmp_path, rng, order):
    """uint16 in either byte order (``>u2``: FITS, raw dumps) is uint16: scaled, saved, restored alike."""
    native = rgb16(rng)
    swapped = native.astype(np.dtype(np.uint16).newbyteorder(order))
    np.testing.assert_array_equal(rio.as_unit_float(swapped), rio.as_unit_float(native))
    save_image(tmp_path / "a.png", swapped, bit_depth=16)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", samples=True), native)
    floats = native.astype(np.dtype(np.float32).newbyteorder(order)) / np.float32(65535)
    np.testing.assert_array_equal(rio.as_unit_float(floats), native.astype(np.float32) / np.float32(65535))


@pytest.mark.slow
def test_read_only_arrays_give_no_torch_warning():
    """``np.asarray`` of a PIL image is read-only; torch warns (once a process) when it wraps one, so
    each entry point is tried in a fresh process with warnings as errors."""
    import subprocess
    import sys

    code = """
import warnings, numpy as np
warnings.simplefilter("error")
from rlenhance.io import as_unit_float
from rlenhance.denoisers import load_denoiser
def read_only(shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    image.flags.writeable = False
    return image
as_unit_float(read_only((12, 10, 3)))
load_denoiser("mrpnet", channels=1, device="cpu").restore(read_only((12, 10, 1)))
load_denoiser("mrpnet", channels=1, device="cpu").restore(read_only((12, 10)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_colour_jpeg_decodes_as_pillow_decodes_it_and_one_with_trailing_data_too(tmp_path, orientation):
    src = (smooth_rgb() * 255).round().astype(np.uint8)
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(src).save(path, quality=90, exif=exif)
    with Image.open(path) as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out = load_image(path, samples=True)
    assert out.flags.writeable and out.flags.c_contiguous
    np.testing.assert_array_equal(out, reference)
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes(path.read_bytes() + b"maker notes after the image")
    np.testing.assert_array_equal(load_image(trailing, samples=True), reference)
