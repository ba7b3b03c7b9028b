"""Image file I/O: the only place where rlenhance touches image files.

Everything returned by :func:`load_image` and accepted by :func:`save_image` is in **RGB** channel order
(OpenCV's BGR exists only inside this package). Loaded images are ``float32`` in ``[0, 1]``, shape
``(H, W, 3)`` (or ``(H, W, 1)`` with ``gray=True``), from PNG, JPEG, BMP or TIFF files of 8 or 16 bits per
sample, with the EXIF orientation applied.

=========================  =====================================================================
module                     what
=========================  =====================================================================
:mod:`rlenhance.io.read`   :func:`list_images`, :func:`load_image`, :func:`load_mask`, the accepted files
:mod:`rlenhance.io.write`  :func:`save_image` (atomic; create-exclusive without ``overwrite``)
:mod:`rlenhance.io.png`    the parallel PNG encoder :func:`save_image` uses
:mod:`rlenhance.io.arrays` :func:`as_unit_float`, :func:`is_gray`, :func:`image_to_tensor`, ... (torch)
:mod:`rlenhance.io.video`  :func:`transcode`: a clip's frames through a function of RGB arrays (PyAV, an extra)
=========================  =====================================================================

Reading and writing files does not import torch; the array helpers are imported on first use.

Example:
    >>> img = load_image("photo.png")                 # doctest: +SKIP
    >>> img.shape, img.dtype                          # doctest: +SKIP
    ((480, 640, 3), dtype('float32'))
    >>> save_image("out/photo.png", img)              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlenhance.io.read import (
    BT601_LUMA_WEIGHTS,
    DEFAULT_MAX_PIXELS,
    HOLE_THRESHOLD,
    IMAGE_EXTENSIONS,
    MASK_THRESHOLD,
    OCCLUDED_PREFIX,
    list_images,
    load_image,
    load_mask,
)
from rlenhance.io.write import DEFAULT_JPEG_QUALITY, float_to_levels, save_image

if TYPE_CHECKING:
    from rlenhance.io.arrays import (
        NOISY_RANGE,
        UNIT_RANGE_TOLERANCE,
        as_unit_float,
        image_to_tensor,
        is_gray,
        tensor_to_image,
    )

__all__ = ["BT601_LUMA_WEIGHTS", "DEFAULT_JPEG_QUALITY", "DEFAULT_MAX_PIXELS", "HOLE_THRESHOLD", "IMAGE_EXTENSIONS",
           "MASK_THRESHOLD", "NOISY_RANGE", "OCCLUDED_PREFIX", "UNIT_RANGE_TOLERANCE", "as_unit_float",
           "float_to_levels", "image_to_tensor", "is_gray", "list_images", "load_image", "load_mask", "save_image",
           "tensor_to_image"]

#: The names of :mod:`rlenhance.io.arrays` (which imports torch), imported on first use.
_ARRAYS = ("_INTEGER_SCALES", "NOISY_RANGE", "UNIT_RANGE_TOLERANCE", "as_unit_float", "image_to_tensor", "is_gray",
           "tensor_to_image")


def __getattr__(name: str) -> Any:
    """Import a name of :data:`_ARRAYS` on first use (PEP 562)."""
    if name not in _ARRAYS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("rlenhance.io.arrays"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ARRAYS))
