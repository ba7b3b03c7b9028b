"""MATLAB's ``imresize`` with its default method (bicubic, antialiased when shrinking), in numpy.

Published NIQE and LOE figures resize with it, and no common Python resize reproduces it. This follows
``imresize.m``: Keys' cubic kernel (``a = -0.5``) widened by ``1 / scale`` when shrinking, mirrored borders,
the axis of smaller scale first, and uint8 rounding and saturation after each axis.

Example:
    >>> import numpy as np
    >>> imresize(np.full((4, 6), 7.0), scale=0.5).round(12).tolist()
    [[7.0, 7.0, 7.0], [7.0, 7.0, 7.0]]
"""

from __future__ import annotations

import math

import numpy as np

from rlenhance.errors import ImageError

__all__ = ["imresize"]

#: Width (taps) of the cubic kernel at scale 1.
_CUBIC_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``), elementwise."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(out_length, taps)`` and 0-based input indices of each output pixel along one axis."""
    width = _CUBIC_WIDTH
    if scale < 1:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

        width = _CUBIC_WIDTH / scale
    else:
        kernel = _cubic
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps)  # 1-based, may fall outside the image
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    used = np.any(weights != 0, axis=0)  # MATLAB drops the all-zero columns
    return weights[:, used], indices[:, used]


def _resize_axis(image: np.ndarray, axis: int, out_length: int, scale: float, *, to_uint8: bool) -> np.ndarray:
    """Resize ``image`` (float64) along ``axis``, summing the taps in order as MATLAB does."""
    weights, indices = _contributions(image.shape[axis], out_length, scale)
    moved = np.moveaxis(image, axis, 0)
    out = np.zeros((out_length,) + moved.shape[1:], dtype=np.float64)
    shape = (out_length,) + (1,) * (moved.ndim - 1)
    for tap in range(weights.shape[1]):
        out += weights[:, tap].reshape(shape) * moved[indices[:, tap]]
    if to_uint8:
        out = np.clip(np.floor(out + 0.5), 0, 255)  # MATLAB rounds half away from zero, then saturates
    return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, *, scale: float | None = None,
             output_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Resize an image as MATLAB's ``imresize(image, scale)`` / ``imresize(image, [rows cols])``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` numpy array, ``uint8`` (0-255) or float (any range).
            Channels are resized independently.
        scale: one factor > 0 for both axes; the output is ``ceil(scale * H) x ceil(scale * W)``
            (MATLAB's rule). Give either ``scale`` or ``output_shape``.
        output_shape: ``(rows, cols)`` of the output, each >= 1; the scale of each axis is then
            ``rows / H`` and ``cols / W``.

    Returns:
        The resized image: ``uint8`` for a ``uint8`` input (rounded and saturated after each axis,
        as MATLAB), float64 otherwise.

    Raises:
        ImageError: ``image`` is not a 2-D / 3-D numpy array of uint8 or float values, or is empty.
        ValueError: neither or both of ``scale`` / ``output_shape``, a non-positive scale or size.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        kind = f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageError(f"imresize: expected a non-empty (H, W) or (H, W, C) numpy array, got {kind}")
    to_uint8 = image.dtype == np.uint8
    if not (to_uint8 or np.issubdtype(image.dtype, np.floating)):
        raise ImageError(f"imresize: unsupported dtype {image.dtype}; accepted: uint8 or a float dtype")
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale and output_shape")
    height, width = image.shape[:2]
    if scale is not None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"imresize: scale must be a finite number > 0, got {scale!r}")
        scales = (float(scale), float(scale))
        sizes = (math.ceil(scale * height), math.ceil(scale * width))
    else:
        sizes = tuple(output_shape)
        if len(sizes) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
            raise ValueError(f"imresize: output_shape must be two ints >= 1, got {output_shape!r}")
        scales = (sizes[0] / height, sizes[1] / width)
    out = image.astype(np.float64)
    for axis in sorted((0, 1), key=lambda a: scales[a]):  # stable: rows first when equal
        out = _resize_axis(out, axis, int(sizes[axis]), scales[axis], to_uint8=to_uint8)
    return out.astype(np.uint8) if to_uint8 else out
