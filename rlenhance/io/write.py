"""Writing image files: :func:`save_image` (RGB, atomic, never over an existing file unless asked).
Torch-free: a torch tensor is accepted when torch is loaded (it is then the caller's)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rlenhance.atomic import atomic_path
from rlenhance.errors import ImageError
from rlenhance.io.png import encode_png
from rlenhance.io.read import _SIXTEEN_BIT_FORMATS, IMAGE_EXTENSIONS, _native_byte_order

if TYPE_CHECKING:
    import torch

DEFAULT_JPEG_QUALITY = 95
"""JPEG quality used by :func:`save_image`."""


def save_image(path: str | os.PathLike[str], img: np.ndarray | torch.Tensor, *, bit_depth: int = 8,
               jpeg_quality: int = DEFAULT_JPEG_QUALITY, overwrite: bool = True) -> None:
    """Write an RGB image atomically.

    Channel order of ``img`` is **RGB**. Float values are clipped to ``[0, 1]`` and rounded to the nearest
    integer level (:func:`float_to_levels`); ``uint8`` / ``uint16`` values are written as they are, or
    rescaled (``x * 257``, ``round(x / 257)``) when their depth differs from ``bit_depth``. The file is
    written to a temporary file in the same folder and moved over ``path`` with ``os.replace``: on any
    failure an existing file at ``path`` is left untouched. Missing parent folders are created. PNG files
    are encoded by :func:`rlenhance.io.png.encode_png`, the other formats by OpenCV.

    Args:
        path: Output file. The format comes from the extension, one of :data:`IMAGE_EXTENSIONS` (case-insensitive).
        img: numpy array (any float dtype, ``uint8`` or ``uint16``, either byte order) of shape ``(H, W)``,
            ``(H, W, 1)`` or ``(H, W, 3)``; or a torch tensor of shape ``(C, H, W)`` or ``(1, C, H, W)`` with
            ``C`` in ``{1, 3}`` (or ``(H, W)``). One channel is written as a grayscale file.
        bit_depth: 8, or 16 for PNG and TIFF.
        jpeg_quality: JPEG quality, 1 to 100 (ignored for other formats).
        overwrite: False: never replace a file at ``path``, not even one that appears while this image is
            written (the name is claimed create-exclusively, :func:`rlenhance.atomic.atomic_path`).

    Raises:
        ImageError: Unknown extension, ``path`` is a directory, bad ``bit_depth`` or ``jpeg_quality``,
            unsupported dtype or shape, zero-size image, NaN or infinite values, or the encoder failed.
            Nothing is written in these cases.
        FileExistsError: ``overwrite`` is False and ``path`` exists; it is left as it is.
        OSError: The file system refused the write (permissions, disk full, ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise _save_error(path, f"unknown extension {path.suffix!r}; accepted: {', '.join(IMAGE_EXTENSIONS)}")
    if path.is_dir():
        raise _save_error(path, "path is a directory")
    if isinstance(bit_depth, bool) or bit_depth not in (8, 16):
        raise _save_error(path, f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and suffix not in _SIXTEEN_BIT_FORMATS:
        raise _save_error(path, f"bit_depth=16 is supported for {', '.join(_SIXTEEN_BIT_FORMATS)} only, "
                          f"not {path.suffix!r}")
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise ImageError(f"jpeg_quality must be an int in [1, 100], got {jpeg_quality!r}")

    if not overwrite and os.path.lexists(path):  # before the work; checked again when the file is put in place
        raise FileExistsError(errno.EEXIST, f"{path} already exists; it was not replaced", str(path))
    data = _encode(_to_samples(path, img, bit_depth), suffix, jpeg_quality=jpeg_quality)
    with atomic_path(path, replace=overwrite) as tmp:
        tmp.write_bytes(data)


#: Rows of a float image converted to samples at a time when saving.
_SAVE_BAND = 256


def _save_error(path: Path, cause: str) -> ImageError:
    return ImageError(f"cannot save image '{path}': {cause}")


def float_to_levels(values: np.ndarray | torch.Tensor, bit_depth: int = 8) -> np.ndarray | torch.Tensor:
    """The integer levels :func:`save_image` writes of float values: ``round(clip(v, 0, 1) * (2**bit_depth - 1))``,
    rounding half to even, for a numpy array or a torch tensor (on its device), as uint8 (``bit_depth`` 8) or
    uint16 (16); also what a restorer's ``dtype=np.uint8`` result holds. NaN are not checked.

    Example:
        >>> float_to_levels(np.array([0.0, 0.5, 1.2], np.float32)).tolist()
        [0, 128, 255]
    """
    max_value = (1 << bit_depth) - 1
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(values, torch.Tensor):
        return values.clamp(0.0, 1.0).mul(max_value).round().to(torch.uint8 if bit_depth == 8 else torch.uint16)
    return np.rint(np.clip(values, 0.0, 1.0) * max_value).astype(np.uint8 if bit_depth == 8 else np.uint16)


def _to_samples(path: Path, img: np.ndarray | torch.Tensor, bit_depth: int) -> np.ndarray:
    """Validate ``img`` and convert it to uint8/uint16 samples, ``(H, W)`` or ``(H, W, 3)`` RGB."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(img, torch.Tensor):
        tensor = img.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim == 3:
            if tensor.shape[0] not in (1, 3):
                raise _save_error(path, f"tensor shape {tuple(img.shape)} is not (C, H, W) or (1, C, H, W) "
                                  "with C in {1, 3}")
            tensor = tensor.permute(1, 2, 0)
        elif tensor.ndim != 2:
            raise _save_error(path, f"tensor shape {tuple(img.shape)}; accepted: (C, H, W), (1, C, H, W), (H, W)")
        array = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    elif isinstance(img, np.ndarray):
        array = _native_byte_order(img)
    else:
        raise _save_error(path, f"expected a numpy array or torch tensor, got {type(img).__name__}")

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise _save_error(path, f"array shape {array.shape}; accepted: (H, W), (H, W, 1), (H, W, 3)")
    if array.size == 0:
        raise _save_error(path, f"zero-size image (shape {array.shape})")

    if np.issubdtype(array.dtype, np.floating):
        # a band of rows at a time: no float copy of a large photo
        samples = np.empty(array.shape, np.uint8 if bit_depth == 8 else np.uint16)
        bad = 0
        for top in range(0, array.shape[0], _SAVE_BAND):
            work = array[top:top + _SAVE_BAND].astype(np.promote_types(array.dtype, np.float32), copy=False)
            bad += int(np.count_nonzero(~np.isfinite(work)))
            if not bad:  # the bad values are only counted (casting them would warn)
                samples[top:top + _SAVE_BAND] = float_to_levels(work, bit_depth)
        if bad:
            raise _save_error(path, f"{bad} NaN or infinite value(s); values must be finite")
        return samples
    if array.dtype == np.uint8:
        return array if bit_depth == 8 else array.astype(np.uint16) * np.uint16(257)
    if array.dtype == np.uint16:
        return array if bit_depth == 16 else ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise _save_error(path, f"unsupported dtype {array.dtype}; accepted: a float dtype, uint8 or uint16")


def _encode(samples: np.ndarray, suffix: str, *, jpeg_quality: int) -> bytes:
    """Encode RGB (or gray) integer samples to the bytes of a ``suffix`` file (PNG: :func:`encode_png`)."""
    if suffix == ".png":
        return encode_png(samples)
    bgr = samples if samples.ndim == 2 else np.ascontiguousarray(samples[..., ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    try:
        ok, buffer = cv2.imencode(suffix, bgr, params)
    except cv2.error as exc:
        raise ImageError(f"OpenCV could not encode a {suffix} image: {exc}") from exc
    if not ok:
        raise ImageError(f"OpenCV could not encode a {suffix} image of shape {samples.shape}")
    return buffer.tobytes()
