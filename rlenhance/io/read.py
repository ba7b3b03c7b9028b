"""Reading image files: :func:`list_images`, :func:`load_image` (RGB float32 in [0, 1], or the
file's integer samples) and :func:`load_mask` (a hole mask file as bool), and the constants of the
accepted files. Torch-free.

Decoding: Pillow reads the header (size, mode, orientation) and decodes 8-bit files and 16-bit
grayscale files. OpenCV decodes 16-bit colour PNG/TIFF (which Pillow reduces to 8 bits) with
``IMREAD_UNCHANGED``, and colour JPEGs that end with their end-of-image marker straight into RGB
(``IMREAD_COLOR_RGB``, the same libjpeg-turbo decode); Pillow decodes the others and reports what is wrong.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from rlenhance.errors import ImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Lower-case file extensions that :func:`list_images` lists and :func:`save_image` writes."""

DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit on ``width * height`` in :func:`load_image` (decompression-bomb guard)."""

BT601_LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights for R, G, B (``load_image(..., gray=True)`` on colour files)."""

OCCLUDED_PREFIX = "occluded_"
"""File-name prefix of the occluded images (a mask file may be named without it)."""

MASK_THRESHOLD = 0.5
"""A hole mask's value above this (in [0, 1]; a mask file: white) marks a missing pixel."""

HOLE_THRESHOLD = 0.04
"""Default largest distance from black of a hole pixel of an occluded image that comes without a mask
(:func:`rlenhance.data.occluded.hole_mask`; tuned on the bedroom data)."""

EXIF_ORIENTATION_TAG = 0x0112

_PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
_ACCEPTED_FORMATS_TEXT = "PNG, JPEG, BMP or TIFF"
_SIXTEEN_BIT_FORMATS = (".png", ".tif", ".tiff")
_MAX_VALUE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N"})
_SIXTEEN_BIT_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_HEADER_BYTES = 32
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})
# What Pillow raises on truncated / corrupt data (its decoders use all of these).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

# Guards the lift-and-restore of Pillow's process-wide ``Image.MAX_IMAGE_PIXELS`` between threads.
_PILLOW_LIMIT_LOCK = threading.Lock()


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """List the image files directly inside ``folder``.

    Args:
        folder: Directory to list (not recursive).

    Returns:
        Paths of the regular files whose extension (case-insensitive) is in :data:`IMAGE_EXTENSIONS`, sorted by
        file name. Hidden files (``"."`` first, e.g. macOS ``._x.png``) are skipped. An empty folder gives ``[]``.

    Raises:
        ImageError: ``folder`` does not exist or is not a directory.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"image folder '{folder}' does not exist")
    if not folder.is_dir():
        raise ImageError(f"image folder '{folder}' is not a directory")
    found = [entry for entry in folder.iterdir()
             if entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith(".") and entry.is_file()]
    return sorted(found, key=lambda entry: entry.name)


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS, gray: bool = False,
               samples: bool = False) -> np.ndarray:
    """Load an image file as an RGB float array (or its integer samples).

    Channel order is **RGB**. Grayscale files are expanded to three equal channels; alpha channels
    (RGBA, LA, palette transparency) are dropped; palette images are expanded through their palette; the
    EXIF orientation is applied (upright as a viewer shows it). 8-bit samples are divided by 255, 16-bit
    samples by 65535 (16-bit precision is kept).

    The size is read from the header and checked against ``max_pixels`` before any pixel data is
    decoded; this check replaces Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).

    Args:
        path: A PNG, JPEG, BMP or TIFF file (the format is taken from the content, not the extension).
        max_pixels: Largest accepted ``width * height``; ``None`` disables the check.
        gray: Return one channel: a grayscale file's exact values, a colour file's luma (:data:`BT601_LUMA_WEIGHTS`).
        samples: Return the samples as decoded, ``uint8`` (``uint16`` for 16-bit files), RGB ``(H, W, 3)``,
            instead of floats (a quarter of the memory; :class:`rlenhance.Enhancer` takes them). Not with ``gray``.

    Returns:
        ``float32`` array in ``[0, 1]``, shape ``(H, W, 3)`` RGB, or ``(H, W, 1)`` with ``gray=True``; with
        ``samples``, a writable ``uint8`` / ``uint16`` array ``(H, W, 3)``.

    Raises:
        ImageError: The file is missing, a directory, empty, not a PNG/JPEG/BMP/TIFF image, truncated or
            corrupt, has a zero width or height, has more than ``max_pixels`` pixels, or uses an unsupported
            sample format (e.g. 32-bit or float TIFF). The message names the file and the cause.
    """
    if samples and gray:
        raise ValueError("load_image: gray=True and samples=True: choose one (luma is computed in floats)")
    decoded = _decoded(Path(path), max_pixels)
    if samples:
        if decoded.ndim == 2:
            return np.repeat(decoded[..., None], 3, axis=2)
        # Pillow's arrays are read-only views of a bytes copy (freed here): torch refuses to wrap them
        return decoded if decoded.flags.writeable else decoded.copy()
    return _to_float(decoded, gray=gray)


def load_mask(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
              threshold: float = MASK_THRESHOLD, band: int = 256) -> np.ndarray:
    """A hole mask file as bool (H, W), True = missing pixel: ``load_image(path, gray=True)[..., 0] >
    threshold`` (white = missing), computed ``band`` rows at a time (no float copy of the file).

    Raises:
        ImageError: as :func:`load_image`.
    """
    decoded = _decoded(Path(path), max_pixels)
    mask = np.empty(decoded.shape[:2], dtype=bool)
    for top in range(0, mask.shape[0], band):
        mask[top:top + band] = _to_float(decoded[top:top + band], gray=True)[..., 0] > threshold
    return mask


def _decoded(path: Path, max_pixels: int | None) -> np.ndarray:
    """:func:`_decode` of a readable file under ``max_pixels`` (checked first, then the file)."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer))
                                   or max_pixels < 1):
        raise ImageError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    if not path.exists():
        raise _load_error(path, "file does not exist")
    if path.is_dir():
        raise _load_error(path, "path is a directory, expected an image file")
    if not path.is_file():
        raise _load_error(path, "not a regular file")
    if path.stat().st_size == 0:
        raise _load_error(path, "file is empty (0 bytes)")
    with _PILLOW_LIMIT_LOCK:  # max_pixels replaces Pillow's decompression-bomb check (warning and error)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return _decode(path, max_pixels)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _load_error(path: Path, cause: str) -> ImageError:
    return ImageError(f"cannot load image '{path}': {cause}")


def _decode(path: Path, max_pixels: int | None) -> np.ndarray:
    """The upright uint8 / uint16 samples of ``path``, (H, W) for a grayscale file or (H, W, 3) RGB."""
    try:
        im = Image.open(path, formats=_PILLOW_FORMATS)
    except Image.UnidentifiedImageError:
        size = _header_size(path)
        if size is not None and min(size) == 0:
            raise _load_error(path, f"zero-size image (width {size[0]} x height {size[1]} in the header)") from None
        raise _load_error(path, f"not a {_ACCEPTED_FORMATS_TEXT} image, or its header is corrupt "
                          "(the data could not be identified)") from None
    except OSError as exc:
        raise _load_error(path, f"cannot read the file ({exc})") from exc
    except _DECODE_ERRORS as exc:  # a header or metadata chunk Pillow refuses while it reads them
        raise _load_error(path, _corrupt(exc, "corrupt header or metadata")) from exc

    with im:
        width, height = im.size
        if width == 0 or height == 0:
            raise _load_error(path, f"zero-size image (width {width} x height {height})")
        if max_pixels is not None and width * height > max_pixels:
            raise _load_error(path, f"{width} x {height} = {width * height} pixels is more than "
                              f"max_pixels={max_pixels} (a guard against decompression bombs; raise it with "
                              "load_image(max_pixels=...) or the command line's --max-pixels)")
        if im.mode in ("I", "F"):
            raise _load_error(path, f"unsupported sample format (Pillow mode {im.mode!r}: 32-bit integer or "
                              "float samples); accepted: 8- or 16-bit unsigned samples")
        if _is_sixteen_bit_colour(im):
            return _decode_sixteen_bit_colour(path, im)
        if im.format == "JPEG" and im.mode == "RGB":
            decoded = _decode_jpeg_with_opencv(path, im)
            if decoded is not None:
                return decoded
        return _decode_with_pillow(path, im)


def _corrupt(exc: BaseException, what: str) -> str:
    """The cause of a file Pillow refused: ``what`` it is, or a metadata chunk over Pillow's limit."""
    if "MAX_TEXT_CHUNK" in str(exc):
        return (f"a text chunk decompresses to more than {PngImagePlugin.MAX_TEXT_CHUNK} bytes, Pillow's limit "
                "(PngImagePlugin.MAX_TEXT_CHUNK, a guard against decompression bombs)")
    return f"{what} ({exc})"


def _is_sixteen_bit_colour(im: Image.Image) -> bool:
    """True for PNG/TIFF files whose colour samples are 16-bit (Pillow would keep only 8)."""
    if im.format not in ("PNG", "TIFF") or im.mode in _SIXTEEN_BIT_GRAY_MODES:
        return False
    for tile in im.tile:
        args = tile.args if hasattr(tile, "args") else tile[-1]
        rawmode = args if isinstance(args, str) else (args[0] if args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise _load_error(path, f"cannot read the file ({exc})") from exc


def _decode_jpeg_with_opencv(path: Path, im: Image.Image) -> np.ndarray | None:
    """An RGB JPEG decoded by OpenCV straight into upright RGB samples; None for a file that does not end
    with the JPEG end-of-image marker (truncated, or with data after the image), which Pillow decodes and judges."""
    encoded = _read_bytes(path)
    if encoded.size < 2 or encoded[-2] != 0xFF or encoded[-1] != 0xD9:
        return None
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if decoded is None or decoded.shape != (im.height, im.width, 3):
        return None
    return _apply_orientation(decoded, _exif_orientation(im))


def _decode_with_pillow(path: Path, im: Image.Image) -> np.ndarray:
    try:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)  # no copy of the decoded image
    except _DECODE_ERRORS as exc:
        raise _load_error(path, _corrupt(exc, "truncated or corrupt image data")) from exc
    mode = im.mode
    try:
        if mode in _SIXTEEN_BIT_GRAY_MODES:
            return np.asarray(im).astype(np.uint16)
        if mode in _GRAY_MODES:
            return np.asarray(im.convert("L"))
        if mode in ("P", "PA"):
            return np.asarray(im.convert("RGBA"))[..., :3]
        return np.asarray(im if mode == "RGB" else im.convert("RGB"))
    except ValueError as exc:
        raise _load_error(path, f"unsupported pixel mode {mode!r} ({exc})") from exc


def _decode_sixteen_bit_colour(path: Path, im: Image.Image) -> np.ndarray:
    orientation = _exif_orientation(im)
    decoded = cv2.imdecode(_read_bytes(path), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise _load_error(path, "truncated or corrupt image data (OpenCV could not decode it)")
    if decoded.dtype != np.uint16:
        raise _load_error(path, f"unsupported sample type {decoded.dtype}; accepted: 8- or 16-bit unsigned")
    rgb = _opencv_to_rgb(path, decoded)
    if orientation == 1:
        return rgb
    # Whether OpenCV applies the EXIF orientation here depends on the codec and version: pick the
    # candidate that matches Pillow's upright 8-bit decode (the high byte of each sample).
    try:
        im.load()
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).astype(np.int32)
    except _DECODE_ERRORS as exc:
        raise _load_error(path, f"truncated or corrupt image data ({exc})") from exc
    for candidate in (rgb, _apply_orientation(rgb, orientation)):
        if candidate.shape == reference.shape and np.abs((candidate >> 8).astype(np.int32) - reference).max() <= 1:
            return candidate
    raise _load_error(path, f"cannot apply EXIF orientation {orientation}: OpenCV and Pillow decodes differ")


def _opencv_to_rgb(path: Path, decoded: np.ndarray) -> np.ndarray:
    """OpenCV BGR / BGRA / gray array -> RGB ``(H, W, 3)`` (alpha dropped)."""
    if decoded.ndim == 2:
        return np.repeat(decoded[..., None], 3, axis=2)
    channels = decoded.shape[2]
    if channels == 1:
        return np.repeat(decoded, 3, axis=2)
    if channels in (3, 4):
        return np.ascontiguousarray(decoded[..., 2::-1])
    raise _load_error(path, f"unsupported channel count {channels}; accepted: 1, 3 or 4")


def _exif_orientation(im: Image.Image) -> int:
    """EXIF orientation (1..8) of ``im``; 1 when absent or unreadable."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Make an ``(H, W, ...)`` array upright given its EXIF orientation (1..8), as ``PIL.ImageOps.exif_transpose``."""
    transform = _ORIENTATIONS.get(orientation)
    return np.ascontiguousarray(img if transform is None else transform(img))


#: EXIF orientation -> its transform: mirror left-right, rotate 180, mirror top-bottom, transpose, rotate 90
#: clockwise, transverse, rotate 90 counter-clockwise.
_ORIENTATIONS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
                 5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, k=-1),
                 7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, k=1)}


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG / BMP / JPEG / TIFF header, or None: why Pillow refused a file (a zero size)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEADER_BYTES)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head.startswith(b"BM") and len(head) >= 26:
                (info_size,) = struct.unpack("<I", head[14:18])
                if info_size == 12:
                    return struct.unpack("<HH", head[18:22])
                width, height = struct.unpack("<ii", head[18:26])
                return abs(width), abs(height)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_header_size(fh, "<" if head[:2] == b"II" else ">", head)
            if head.startswith(b"\xff\xd8"):
                return _jpeg_header_size(fh)
    except (OSError, struct.error):
        return None
    return None


def _tiff_header_size(fh: BinaryIO, endian: str, head: bytes) -> tuple[int, int] | None:
    (ifd_offset,) = struct.unpack(endian + "I", head[4:8])
    fh.seek(ifd_offset)
    (count,) = struct.unpack(endian + "H", fh.read(2))
    dims: dict[int, int] = {}
    for _ in range(count):
        tag, field_type, _n, value = struct.unpack(endian + "HHI4s", fh.read(12))
        if tag in (256, 257):  # ImageWidth, ImageLength
            fmt = "H" if field_type == 3 else "I"
            dims[tag] = struct.unpack(endian + fmt, value[: struct.calcsize(fmt)])[0]
    return (dims[256], dims[257]) if 256 in dims and 257 in dims else None


def _jpeg_header_size(fh: BinaryIO) -> tuple[int, int] | None:
    fh.seek(2)
    while True:
        byte = fh.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = fh.read(1)
        while marker == b"\xff":
            marker = fh.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in _JPEG_STANDALONE_MARKERS or code == 0x00:
            continue
        (length,) = struct.unpack(">H", fh.read(2))
        if code in _JPEG_SOF_MARKERS:
            _precision, height, width = struct.unpack(">BHH", fh.read(5))
            return width, height
        fh.seek(length - 2, os.SEEK_CUR)


def _to_float(samples: np.ndarray, *, gray: bool) -> np.ndarray:
    """Integer samples (H, W) gray or (H, W, 3) RGB -> float32 in [0, 1]."""
    max_value = _MAX_VALUE[samples.dtype]
    if samples.ndim == 2:
        plane = samples.astype(np.float32) / np.float32(max_value)
        return plane[..., None] if gray else np.repeat(plane[..., None], 3, axis=2)
    if not gray:
        image = samples.astype(np.float32)
        image /= np.float32(max_value)  # in place: one float copy of a large photo, not two
        return image
    # Accumulate in float64 so that R == G == B gives exactly the grayscale value.
    luma = np.zeros(samples.shape[:2], dtype=np.float64)
    for channel, weight in enumerate(BT601_LUMA_WEIGHTS):
        luma += weight * samples[..., channel]
    return (luma / max_value).astype(np.float32)[..., None]


def _native_byte_order(array: np.ndarray) -> np.ndarray:
    """``array``, or a copy in this machine's byte order (e.g. ``>u2``, big-endian uint16 from a FITS or
    raw file, as ``uint16``): the dtype checks, numpy's arithmetic and torch all expect native order."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
