"""Image file I/O: the only place where rlenhance touches image files.

Everything returned by :func:`load_image` and accepted by :func:`save_image` is in **RGB**
channel order. OpenCV's BGR order exists only inside this module; arrays are converted at
this boundary and nowhere else.

Loaded images are ``float32`` in ``[0, 1]`` with shape ``(H, W, 3)`` (or ``(H, W, 1)`` with
``gray=True``). Supported files: PNG, JPEG, BMP and TIFF, 8 or 16 bits per sample,
grayscale / RGB / RGBA / LA / palette, with the EXIF orientation applied.

Decoding: Pillow reads the header (size, mode, orientation) and decodes 8-bit files and
16-bit grayscale files (``I;16``, full precision). Pillow reduces 16-bit colour to 8 bits,
so 16-bit colour PNG/TIFF pixels are decoded by OpenCV with ``IMREAD_UNCHANGED``.

Example:
    >>> img = load_image("photo.png")                 # doctest: +SKIP
    >>> img.shape, img.dtype                          # doctest: +SKIP
    ((480, 640, 3), dtype('float32'))
    >>> save_image("out/photo.png", img)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin

try:  # ISA-L's deflate (the isal package, a dependency): a fifth of zlib's time, for PNG files
    from isal import isal_zlib as _deflate
except ImportError:  # an environment installed before isal was a dependency
    _deflate = zlib

from rlenhance.atomic import atomic_path
from rlenhance.errors import ImageError

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "NOISY_RANGE",
    "UNIT_RANGE_TOLERANCE",
    "as_unit_float",
    "image_to_tensor",
    "is_gray",
    "list_images",
    "load_image",
    "save_image",
    "tensor_to_image",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Lower-case file extensions that :func:`list_images` lists and :func:`save_image` writes."""

DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit on ``width * height`` in :func:`load_image` (decompression-bomb guard)."""

DEFAULT_JPEG_QUALITY = 95
"""JPEG quality used by :func:`save_image`."""

BT601_LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights for R, G, B (``load_image(..., gray=True)`` on colour files)."""

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

# Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is process-wide state.
# load_image replaces it by its own ``max_pixels`` check; this lock makes the temporary
# lift-and-restore safe between threads that call load_image.
_PILLOW_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------- listing


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """List the image files directly inside ``folder``.

    Args:
        folder: Directory to list (not recursive).

    Returns:
        Paths of the regular files whose extension (case-insensitive) is in
        :data:`IMAGE_EXTENSIONS`, sorted by file name. Hidden files (name starting with
        ``"."``, e.g. macOS ``._x.png`` resource forks) are skipped. An empty folder gives ``[]``.

    Raises:
        ImageError: ``folder`` does not exist or is not a directory.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"image folder '{folder}' does not exist")
    if not folder.is_dir():
        raise ImageError(f"image folder '{folder}' is not a directory")
    found = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_EXTENSIONS
        and not entry.name.startswith(".")
        and entry.is_file()
    ]
    return sorted(found, key=lambda entry: entry.name)


# --------------------------------------------------------------------------- loading


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    gray: bool = False,
    samples: bool = False,
) -> np.ndarray:
    """Load an image file as an RGB float array (or its integer samples).

    Channel order is **RGB** (OpenCV's BGR is converted here). Grayscale files are expanded
    to three equal channels; alpha channels (RGBA, LA, palette transparency) are dropped;
    palette images are expanded through their palette; the EXIF orientation tag is applied,
    so the array is upright as a viewer shows it. 8-bit samples are divided by 255, 16-bit
    samples by 65535 (16-bit precision is kept).

    The size is read from the header and checked against ``max_pixels`` before any pixel
    data is decoded. This check replaces Pillow's decompression-bomb limit, so an image
    under ``max_pixels`` loads even when it is above ``PIL.Image.MAX_IMAGE_PIXELS``.

    Args:
        path: A PNG, JPEG, BMP or TIFF file (the format is taken from the content, not the
            extension).
        max_pixels: Largest accepted ``width * height``; ``None`` disables the check.
        gray: Return one channel. A grayscale file gives its exact values; a colour file
            gives ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``.
        samples: Return the samples as decoded, ``uint8`` (``uint16`` for 16-bit files), RGB
            ``(H, W, 3)``, instead of floats: a quarter of the memory for a large photo (what
            ``rlenhance enhance`` reads; :class:`rlenhance.Enhancer` takes them as they are). Not
            with ``gray``.

    Returns:
        ``float32`` array in ``[0, 1]``, shape ``(H, W, 3)`` RGB, or ``(H, W, 1)`` with
        ``gray=True``; with ``samples``, a writable ``uint8`` / ``uint16`` array ``(H, W, 3)``.

    Raises:
        ImageError: The file is missing, a directory, empty, not a PNG/JPEG/BMP/TIFF image,
            truncated or corrupt, has a zero width or height, has more than ``max_pixels``
            pixels, or uses an unsupported sample format (e.g. 32-bit or float TIFF). The
            message names the file and the cause.
    """
    path = Path(path)
    if max_pixels is not None and (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, (int, np.integer))
        or max_pixels < 1
    ):
        raise ImageError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    if samples and gray:
        raise ValueError("load_image: gray=True and samples=True: choose one (luma is computed in floats)")
    _check_readable_file(path)
    with _pillow_limit_lifted():
        decoded, is_gray_file = _decode(path, max_pixels)
    if samples:
        if decoded.ndim == 2:
            return np.repeat(decoded[..., None], 3, axis=2)
        # Pillow's arrays are read-only views of a bytes copy (freed here): torch refuses to wrap them
        return decoded if decoded.flags.writeable else decoded.copy()
    return _to_float(decoded, is_gray_file=is_gray_file, gray=gray)


def _load_error(path: Path, cause: str) -> ImageError:
    return ImageError(f"cannot load image '{path}': {cause}")


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise _load_error(path, "file does not exist")
    if path.is_dir():
        raise _load_error(path, "path is a directory, expected an image file")
    if not path.is_file():
        raise _load_error(path, "not a regular file")
    if path.stat().st_size == 0:
        raise _load_error(path, "file is empty (0 bytes)")


@contextlib.contextmanager
def _pillow_limit_lifted() -> Iterator[None]:
    """Disable Pillow's decompression-bomb check (warning and error) for the duration.

    load_image checks ``max_pixels`` itself from the header, before decoding.
    """
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode(path: Path, max_pixels: int | None) -> tuple[np.ndarray, bool]:
    """Decode ``path`` to integer samples.

    Returns:
        ``(samples, is_gray_file)``: ``samples`` is uint8 or uint16, shape ``(H, W)`` for a
        grayscale file or ``(H, W, 3)`` RGB, already upright (EXIF orientation applied).
    """
    try:
        im = Image.open(path, formats=_PILLOW_FORMATS)
    except Image.UnidentifiedImageError:
        size = _header_size(path)
        if size is not None and min(size) == 0:
            raise _load_error(
                path, f"zero-size image (width {size[0]} x height {size[1]} in the header)"
            ) from None
        raise _load_error(
            path,
            f"not a {_ACCEPTED_FORMATS_TEXT} image, or its header is corrupt "
            "(the data could not be identified)",
        ) from None
    except OSError as exc:
        raise _load_error(path, f"cannot read the file ({exc})") from exc
    except _DECODE_ERRORS as exc:  # a header or metadata chunk Pillow refuses while it reads them
        raise _load_error(path, _corrupt(exc, "corrupt header or metadata")) from exc

    with im:
        width, height = im.size
        if width == 0 or height == 0:
            raise _load_error(path, f"zero-size image (width {width} x height {height})")
        if max_pixels is not None and width * height > max_pixels:
            raise _load_error(
                path,
                f"{width} x {height} = {width * height} pixels is more than "
                f"max_pixels={max_pixels} (a guard against decompression bombs; raise it with "
                "load_image(max_pixels=...) or the command line's --max-pixels)",
            )
        if im.mode in ("I", "F"):
            raise _load_error(
                path,
                f"unsupported sample format (Pillow mode {im.mode!r}: 32-bit integer or "
                "float samples); accepted: 8- or 16-bit unsigned samples",
            )
        if _is_sixteen_bit_colour(im):
            return _decode_sixteen_bit_colour(path, im), False
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



def _decode_with_pillow(path: Path, im: Image.Image) -> tuple[np.ndarray, bool]:
    try:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)  # no copy of the decoded image (a large photo's hundreds of MB)
    except _DECODE_ERRORS as exc:
        raise _load_error(path, _corrupt(exc, "truncated or corrupt image data")) from exc
    upright = im
    mode = upright.mode
    try:
        if mode in _SIXTEEN_BIT_GRAY_MODES:
            return np.asarray(upright).astype(np.uint16), True
        if mode in _GRAY_MODES:
            return np.asarray(upright.convert("L")), True
        if mode in ("P", "PA"):
            return np.asarray(upright.convert("RGBA"))[..., :3], False
        return np.asarray(upright if mode == "RGB" else upright.convert("RGB")), False
    except ValueError as exc:
        raise _load_error(path, f"unsupported pixel mode {mode!r} ({exc})") from exc


def _decode_sixteen_bit_colour(path: Path, im: Image.Image) -> np.ndarray:
    orientation = _exif_orientation(im)
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise _load_error(path, f"cannot read the file ({exc})") from exc
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise _load_error(path, "truncated or corrupt image data (OpenCV could not decode it)")
    if decoded.dtype != np.uint16:
        raise _load_error(
            path, f"unsupported sample type {decoded.dtype}; accepted: 8- or 16-bit unsigned"
        )
    rgb = _opencv_to_rgb(path, decoded)
    if orientation == 1:
        return rgb
    # Whether OpenCV applies the EXIF orientation under IMREAD_UNCHANGED depends on the
    # codec and OpenCV version (its TIFF decoder does, its PNG decoder does not). Pick the
    # candidate that matches Pillow's upright 8-bit decode (the high byte of each sample).
    try:
        im.load()
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).astype(np.int32)
    except _DECODE_ERRORS as exc:
        raise _load_error(path, f"truncated or corrupt image data ({exc})") from exc
    for candidate in (rgb, _apply_orientation(rgb, orientation)):
        if candidate.shape == reference.shape:
            high_byte = (candidate >> 8).astype(np.int32)
            if np.abs(high_byte - reference).max() <= 1:
                return candidate
    raise _load_error(
        path, f"cannot apply EXIF orientation {orientation}: OpenCV and Pillow decodes differ"
    )


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
    """Make an ``(H, W, ...)`` array upright given its EXIF orientation (1..8).

    Same transforms as ``PIL.ImageOps.exif_transpose``: 2 mirror left-right, 3 rotate 180,
    4 mirror top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
    counter-clockwise.
    """
    if orientation == 2:
        out = img[:, ::-1]
    elif orientation == 3:
        out = img[::-1, ::-1]
    elif orientation == 4:
        out = img[::-1]
    elif orientation == 5:
        out = img.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(img, k=-1)
    elif orientation == 7:
        out = img[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        out = np.rot90(img, k=1)
    else:
        out = img
    return np.ascontiguousarray(out)


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG / BMP / JPEG / TIFF header, or None if not recognised.

    Used only to explain why Pillow refused a file (Pillow rejects zero-size images as
    unidentifiable).
    """
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
    if 256 in dims and 257 in dims:
        return dims[256], dims[257]
    return None


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


def _to_float(samples: np.ndarray, *, is_gray_file: bool, gray: bool) -> np.ndarray:
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


# --------------------------------------------------------------------------- saving


def save_image(
    path: str | os.PathLike[str],
    img: np.ndarray | torch.Tensor,
    *,
    bit_depth: int = 8,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    overwrite: bool = True,
) -> None:
    """Write an RGB image atomically.

    Channel order of ``img`` is **RGB** (it is converted to OpenCV's BGR here). Float values
    are clipped to ``[0, 1]`` and rounded to the nearest integer level (``round(x * 255)``
    or ``round(x * 65535)``); ``uint8`` / ``uint16`` values are written as they are, or
    rescaled (``x * 257``, ``round(x / 257)``) when their depth differs from ``bit_depth``.
    The file is first written to a temporary file in the same folder and then moved over
    ``path`` with ``os.replace``: on any failure the temporary file is removed and an
    existing file at ``path`` is left untouched. Missing parent folders are created. PNG files are
    encoded here (one zlib stream deflated in bands by parallel threads, see :func:`_png`; a
    24-megapixel photo in about half the time of OpenCV's encoder on two cores), the other formats
    by OpenCV.

    Args:
        path: Output file. The format comes from the extension, one of
            :data:`IMAGE_EXTENSIONS` (case-insensitive).
        img: numpy array (any float dtype, ``uint8`` or ``uint16``, either byte order) of shape ``(H, W)``,
            ``(H, W, 1)`` or ``(H, W, 3)``; or a torch tensor of shape ``(C, H, W)`` or
            ``(1, C, H, W)`` with ``C`` in ``{1, 3}`` (or ``(H, W)``). One channel is written
            as a grayscale file.
        bit_depth: 8, or 16 for PNG and TIFF.
        jpeg_quality: JPEG quality, 1 to 100 (ignored for other formats).
        overwrite: False: never replace a file at ``path``, not even one that appears while this
            image is encoded and written (the name is claimed create-exclusively when the finished
            file is put in place, :func:`rlenhance.atomic.atomic_path` with ``replace=False``).

    Raises:
        ImageError: Unknown extension, ``path`` is a directory, bad ``bit_depth`` or
            ``jpeg_quality``, unsupported dtype or shape, zero-size image, NaN or infinite
            values, or the encoder failed. Nothing is written in these cases.
        FileExistsError: ``overwrite`` is False and ``path`` exists; it is left as it is.
        OSError: The file system refused the write (permissions, disk full, ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ImageError(
            f"cannot save image '{path}': unknown extension {path.suffix!r}; "
            f"accepted: {', '.join(IMAGE_EXTENSIONS)}"
        )
    if path.is_dir():
        raise ImageError(f"cannot save image '{path}': path is a directory")
    if isinstance(bit_depth, bool) or bit_depth not in (8, 16):
        raise ImageError(
            f"cannot save image '{path}': bit_depth must be 8 or 16, got {bit_depth!r}"
        )
    if bit_depth == 16 and suffix not in _SIXTEEN_BIT_FORMATS:
        raise ImageError(
            f"cannot save image '{path}': bit_depth=16 is supported for "
            f"{', '.join(_SIXTEEN_BIT_FORMATS)} only, not {path.suffix!r}"
        )
    if (
        isinstance(jpeg_quality, bool)
        or not isinstance(jpeg_quality, int)
        or not 1 <= jpeg_quality <= 100
    ):
        raise ImageError(f"jpeg_quality must be an int in [1, 100], got {jpeg_quality!r}")

    if not overwrite and os.path.lexists(path):  # before the work; checked again when the file is put in place
        raise FileExistsError(errno.EEXIST, f"{path} already exists; it was not replaced", str(path))
    samples = _to_samples(path, img, bit_depth)
    data = _encode(samples, suffix, jpeg_quality=jpeg_quality)
    with atomic_path(path, replace=overwrite) as tmp:
        tmp.write_bytes(data)


#: Rows of a float image converted to samples at a time when saving.
_SAVE_BAND = 256


def _to_samples(path: Path, img: np.ndarray | torch.Tensor, bit_depth: int) -> np.ndarray:
    """Validate ``img`` and convert it to uint8/uint16 samples, ``(H, W)`` or ``(H, W, 3)`` RGB."""

    def fail(cause: str) -> ImageError:
        return ImageError(f"cannot save image '{path}': {cause}")

    if isinstance(img, torch.Tensor):
        tensor = img.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim == 3:
            if tensor.shape[0] not in (1, 3):
                raise fail(
                    f"tensor shape {tuple(img.shape)} is not (C, H, W) or (1, C, H, W) "
                    "with C in {1, 3}"
                )
            tensor = tensor.permute(1, 2, 0)
        elif tensor.ndim != 2:
            raise fail(
                f"tensor shape {tuple(img.shape)}; accepted: (C, H, W), (1, C, H, W), (H, W)"
            )
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        array = tensor.numpy()
    elif isinstance(img, np.ndarray):
        array = _native_byte_order(img)
    else:
        raise fail(f"expected a numpy array or torch tensor, got {type(img).__name__}")

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise fail(f"array shape {array.shape}; accepted: (H, W), (H, W, 1), (H, W, 3)")
    if array.size == 0:
        raise fail(f"zero-size image (shape {array.shape})")

    max_value = (1 << bit_depth) - 1
    out_dtype = np.uint8 if bit_depth == 8 else np.uint16
    if np.issubdtype(array.dtype, np.floating):
        # a band of rows at a time: a large photo costs its samples, not float copies of its size
        samples = np.empty(array.shape, out_dtype)
        bad = 0
        for top in range(0, array.shape[0], _SAVE_BAND):
            work = array[top:top + _SAVE_BAND].astype(np.promote_types(array.dtype, np.float32), copy=False)
            bad += int(np.count_nonzero(~np.isfinite(work)))
            if not bad:  # the bad values are only counted (casting them would warn)
                samples[top:top + _SAVE_BAND] = np.rint(np.clip(work, 0.0, 1.0) * max_value)
        if bad:
            raise fail(f"{bad} NaN or infinite value(s); values must be finite")
        return samples
    if array.dtype == np.uint8:
        return array if bit_depth == 8 else array.astype(np.uint16) * np.uint16(257)
    if array.dtype == np.uint16:
        if bit_depth == 16:
            return array
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise fail(f"unsupported dtype {array.dtype}; accepted: a float dtype, uint8 or uint16")


def _encode(samples: np.ndarray, suffix: str, *, jpeg_quality: int) -> bytes:
    """Encode RGB (or gray) integer samples to the bytes of a ``suffix`` file (PNG: :func:`_png`)."""
    if suffix == ".png":
        return _png(samples)
    bgr = samples if samples.ndim == 2 else np.ascontiguousarray(samples[..., ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    try:
        ok, buffer = cv2.imencode(suffix, bgr, params)
    except cv2.error as exc:
        raise ImageError(f"OpenCV could not encode a {suffix} image: {exc}") from exc
    if not ok:
        raise ImageError(f"OpenCV could not encode a {suffix} image of shape {samples.shape}")
    return buffer.tobytes()


#: PNG writing: the compressobj arguments, raw deflate at level 1 (ISA-L's level 0 makes 30% larger
#: files, its level 3 takes twice the time for 1% smaller ones; zlib: OpenCV's settings), and about
#: this many filtered bytes a band.
_DEFLATE_ARGS = (1, _deflate.DEFLATED, -15, 9, zlib.Z_RLE if _deflate is zlib else _deflate.Z_DEFAULT_STRATEGY)
_PNG_BAND_BYTES = 1 << 21
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The zlib stream header of a deflate stream with a 32 KiB window at the fastest level (RFC 1950).
_ZLIB_HEADER = b"\x78\x01"
_ADLER_BASE = 65521


def _png(samples: np.ndarray, threads: int | None = None) -> bytes:
    """The bytes of a PNG file of integer samples (H, W) gray or (H, W, 3) RGB, uint8 or uint16.

    Every row gets PNG's Up filter (its bytes minus those of the row above; the first row's are its
    own), which compresses photos a few per cent better than the Sub filter OpenCV writes with, at
    the same speed. The rows are deflated at level 1 by ISA-L (the ``isal`` package): a fifth of the
    time of zlib's level 1 for a slightly smaller file (without isal: zlib at level 1 with its
    run-length strategy, OpenCV's settings); ``docs/performance.md`` has the measurements. They are
    filtered and compressed in bands of about 2 MB by ``threads`` threads (None: one a core; numpy
    and the compressors release the GIL, and the bands are handed out one by one, so a core taken by
    another process delays only the bands it holds) and joined into one zlib stream as pigz does:
    every band but the last ends with a sync flush (byte-aligned, no final block), and the bands'
    Adler-32 checksums are combined. One IDAT chunk a band.
    """
    samples = np.ascontiguousarray(samples)
    height, width = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    rows = samples.reshape(height, width * channels)
    row_bytes = rows.shape[1] * samples.itemsize
    band_rows = max(1, _PNG_BAND_BYTES // (row_bytes + 1))
    bands = [(top, min(height, top + band_rows)) for top in range(0, height, band_rows)]

    def deflate_band(band: tuple[int, int]) -> tuple[bytes, int, int]:
        top, bottom = band
        # PNG stores 16-bit samples big-endian; the filters act on the bytes
        raw = rows[max(0, top - 1):bottom].astype(">u2" if samples.itemsize == 2 else np.uint8, copy=False)
        raw = raw.view(np.uint8)
        filtered = np.empty((bottom - top, 1 + row_bytes), dtype=np.uint8)
        filtered[:, 0] = 2  # Up
        if top == 0:
            filtered[0, 1:] = raw[0]
            np.subtract(raw[1:], raw[:-1], out=filtered[1:, 1:])
        else:
            np.subtract(raw[1:], raw[:-1], out=filtered[:, 1:])
        compressor = _deflate.compressobj(*_DEFLATE_ARGS)
        last = bottom == height
        end = _deflate.Z_FINISH if last else _deflate.Z_SYNC_FLUSH
        deflated = compressor.compress(filtered) + compressor.flush(end)
        return deflated, _deflate.adler32(filtered), filtered.size

    workers = min(len(bands), threads or os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            deflated = list(pool.map(deflate_band, bands))
    else:
        deflated = [deflate_band(band) for band in bands]
    colour_type = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, samples.itemsize * 8, colour_type, 0, 0, 0)
    pieces = [_PNG_SIGNATURE, _png_chunk(b"IHDR", header)]
    adler = 1
    for index, (data, band_adler, size) in enumerate(deflated):
        adler = _adler32_combine(adler, band_adler, size)
        if index == 0:
            data = _ZLIB_HEADER + data
        if index == len(deflated) - 1:
            data += struct.pack(">I", adler)
        pieces.append(_png_chunk(b"IDAT", data))
    pieces.append(_png_chunk(b"IEND", b""))
    return b"".join(pieces)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings one after the other, from theirs (zlib's ``adler32_combine``)."""
    rem = second_length % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = rem * sum1 % _ADLER_BASE
    sum1 = (sum1 + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + (first >> 16) + (second >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | sum2 << 16


# --------------------------------------------------------------------------- arrays from callers

UNIT_RANGE_TOLERANCE = 1e-4
"""Float images may stray this far outside [0, 1] (rounding); such values are clipped, larger ones refused."""

NOISY_RANGE = (-1.0, 2.0)
"""What a noisy image (``noisy=True``) may span: an image in [0, 1] plus unclipped Gaussian noise, as in
the DnCNN / PixelRL protocol (sigma 50/255 is about 0.2, so this is five sigmas or more). Not clipped."""

_INTEGER_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, torch.uint8: 255.0,
                   **({torch.uint16: 65535.0} if hasattr(torch, "uint16") else {})}
_ACCEPTED_IMAGE_TEXT = (f"float values in [0, 1] (within {UNIT_RANGE_TOLERANCE:g}), or uint8 / uint16 samples, "
                        "which are divided by 255 / 65535")


def as_unit_float(image: np.ndarray | torch.Tensor, *, name: str = "image", allow_tensor: bool = False,
                  noisy: bool = False) -> np.ndarray | torch.Tensor:
    """Check an image handed in by a caller and return it as float32 in [0, 1].

    The one input check of the public entry points (``Enhancer``, ``SupervisedRestorer``, the RL
    rollouts, the environments' ``reset(options=...)``): what ``cv2.imread`` or
    ``np.asarray(PIL.Image)`` give (uint8, 0-255) is scaled by its dtype's range instead of being
    read as if it were in [0, 1]. Shapes are the caller's to check; channel order is not changed
    (``cv2.imread`` gives BGR: convert it to RGB before passing it in).

    Accepted:
        * floats (any precision) that are finite and in [0, 1]; values within
          :data:`UNIT_RANGE_TOLERANCE` outside it are clipped; with ``noisy=True`` (a denoiser's
          input) finite floats in :data:`NOISY_RANGE`, kept as they are;
        * ``uint8`` (divided by 255) and ``uint16`` (divided by 65535), in either byte order.

    Args:
        image: a numpy array (or, with ``allow_tensor=True``, a torch tensor) of any shape.
        name: what the caller calls it, for the message (``"image"``, ``"options['noisy']"``).
        allow_tensor: accept torch tensors (returned as float32 tensors on their device).
        noisy: the image may carry unclipped noise (see above).

    Returns:
        float32 numpy array (a tensor for a tensor input), same shape, values in [0, 1] (in
        :data:`NOISY_RANGE` with ``noisy=True``). A float32 input already in range is returned as
        it is (no copy).

    Raises:
        ImageError: another type (a torch tensor when not allowed: the message says how to
            convert it), bool or other integer dtypes, an empty array, NaN / infinite values, or
            values outside [0, 1]; the message says what was found and what is accepted.

    Example:
        >>> as_unit_float(np.array([[0, 255]], dtype=np.uint8)).tolist()
        [[0.0, 1.0]]
    """
    if isinstance(image, torch.Tensor) and not allow_tensor:
        raise ImageError(f"{name}: got a torch.Tensor of shape {tuple(image.shape)}; pass a numpy array "
                         "(H, W, C), e.g. tensor.permute(1, 2, 0).cpu().numpy() for a (C, H, W) tensor")
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise ImageError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if isinstance(image, np.ndarray):
        image = _native_byte_order(image)
    if image.dtype in _INTEGER_SCALES:
        scale = _INTEGER_SCALES[image.dtype]
        if isinstance(image, torch.Tensor):
            return image.to(torch.float32) / scale
        return image.astype(np.float32) / np.float32(scale)
    floating = image.is_floating_point() if isinstance(image, torch.Tensor) else np.issubdtype(image.dtype,
                                                                                                np.floating)
    if not floating:
        raise ImageError(f"{name}: unsupported dtype {image.dtype}; accepted: {_ACCEPTED_IMAGE_TEXT} "
                         "(convert other integer or bool images to float in [0, 1] yourself)")
    if image.numel() == 0 if isinstance(image, torch.Tensor) else image.size == 0:
        raise ImageError(f"{name}: empty image (shape {tuple(image.shape)})")
    values = image.to(torch.float32) if isinstance(image, torch.Tensor) else image.astype(np.float32, copy=False)
    accepted = (f"finite float values in [{NOISY_RANGE[0]:g}, {NOISY_RANGE[1]:g}] (an image in [0, 1] with "
                "unclipped noise), or uint8 / uint16 samples" if noisy else _ACCEPTED_IMAGE_TEXT)
    # a NaN makes both extremes NaN, an infinity is one of them; only then are the bad values counted
    low, high = _extremes(values)
    if not (math.isfinite(low) and math.isfinite(high)):
        tensor = isinstance(values, torch.Tensor)
        bad = int((~(torch.isfinite(values) if tensor else np.isfinite(values))).sum())
        count = values.numel() if tensor else values.size
        raise ImageError(f"{name}: {bad} NaN or infinite value(s) of {count}; accepted: {accepted}")
    lowest, highest = NOISY_RANGE if noisy else (-UNIT_RANGE_TOLERANCE, 1.0 + UNIT_RANGE_TOLERANCE)
    if low < lowest or high > highest:
        hint = " (0-255 values in a float array? divide by 255)" if high > max(highest, 2.0) else ""
        raise ImageError(f"{name}: values span [{low:.6g}, {high:.6g}]{hint}; accepted: {accepted}")
    if not noisy and (low < 0.0 or high > 1.0):
        return values.clamp(0.0, 1.0) if isinstance(values, torch.Tensor) else np.clip(values, 0.0, 1.0)
    return values


def _extremes(values: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Smallest and largest value of a float32 array or tensor (NaN when it holds one)."""
    # the axes in memory order: a transposed view (an (H, W, C) view of a (C, H, W) image) is then
    # read in place, not copied; the extremes do not depend on the order
    order = sorted(range(values.ndim), key=lambda axis: -values.strides[axis] if isinstance(values, np.ndarray)
                   else -values.stride(axis))
    if isinstance(values, np.ndarray):
        values = np.transpose(values, order)
        if not values.flags.writeable:  # torch would warn that it cannot protect it: numpy's two passes
            return float(values.min()), float(values.max())
        values = torch.from_numpy(np.ascontiguousarray(values))
    else:
        values = values.permute(*order)
    # one pass and no temporary (torch.isfinite makes two of the image's size)
    low, high = torch.aminmax(values)
    return float(low), float(high)


def _native_byte_order(array: np.ndarray) -> np.ndarray:
    """``array``, or a copy in this machine's byte order (e.g. ``>u2``, big-endian uint16 from a FITS or
    raw file, as ``uint16``): the dtype checks, numpy's arithmetic and torch all expect native order."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def is_gray(image: np.ndarray) -> bool:
    """Whether an ``(H, W, C)`` (or ``(H, W)``) image is gray: one plane, or three equal ones (how
    :func:`load_image` returns a grayscale file)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


# --------------------------------------------------------------------------- tensors


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W, C)`` image array to a ``(C, H, W)`` float32 tensor (a copy).

    Args:
        img: float array, shape ``(H, W, C)`` (or ``(H, W)``, treated as one channel).
            Channel order is kept (RGB stays RGB); values are not rescaled.

    Returns:
        CPU ``float32`` tensor of shape ``(C, H, W)``.

    Raises:
        ImageError: ``img`` is not a float numpy array of 2 or 3 dimensions.
    """
    if not isinstance(img, np.ndarray) or not np.issubdtype(img.dtype, np.floating):
        kind = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
        raise ImageError(f"image_to_tensor: expected a float numpy array (H, W, C), got {kind}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ImageError(f"image_to_tensor: expected shape (H, W, C) or (H, W), got {img.shape}")
    chw = np.array(np.moveaxis(img, 2, 0), dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(chw)


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """Convert a ``(C, H, W)`` or ``(1, C, H, W)`` tensor to an ``(H, W, C)`` float32 array.

    The tensor may live on any device and may require grad; the result is a detached CPU
    copy. Channel order is kept; values are not clipped.

    Args:
        t: floating tensor, shape ``(C, H, W)`` or ``(1, C, H, W)``.

    Returns:
        ``float32`` array of shape ``(H, W, C)``.

    Raises:
        ImageError: ``t`` is not a floating tensor of one of those shapes.
    """
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        kind = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise ImageError(f"tensor_to_image: expected a floating torch tensor, got {kind}")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise ImageError(
            f"tensor_to_image: expected shape (C, H, W) or (1, C, H, W), got {tuple(t.shape)}"
        )
    hwc = t.detach().to(device="cpu", dtype=torch.float32).permute(1, 2, 0)
    return np.array(hwc.numpy(), dtype=np.float32, order="C", copy=True)
