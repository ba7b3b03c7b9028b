"""No-reference measures of what a low-light enhancement did to a photo: the colour noise it left in
the dark areas (:func:`dark_colour_noise`) and the pixels it clipped (:func:`clipped_fraction`).

Both take numpy images ``(H, W, 3)`` RGB: float in [0, 1], or uint8 / uint16 samples (as
:func:`rlenhance.io.as_unit_float` reads them). NIQE (:func:`rlenhance.metrics.niqe`) rewards
sharpness and penalises noise alike, so read it with :func:`dark_colour_noise`.
"""

from __future__ import annotations

import cv2
import numpy as np

from rlenhance.errors import ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS, as_unit_float

__all__ = ["clipped_fraction", "dark_colour_noise"]

#: The darkest fraction of the input's pixels (by luma) :func:`dark_colour_noise` looks at.
DARK_FRACTION = 0.3
#: Sigma (pixels) of the blur before the output's luma gradient that tells flat areas from edges.
FLAT_SIGMA = 2.0
#: Side of the windows of the local chroma variance.
WINDOW = 5


def _rgb(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` as float64 (H, W, 3) in [0, 1]; ImageError for anything else."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageError(f"{name}: expected an RGB array (H, W, 3), got "
                         f"{getattr(image, 'shape', type(image).__name__)}")
    return as_unit_float(image, name=name).astype(np.float64)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.asarray(BT601_LUMA_WEIGHTS, dtype=np.float64)


def dark_colour_noise(input: np.ndarray, output: np.ndarray) -> float:
    """Colour noise of ``output`` in the dark, flat areas of ``input`` (lower is cleaner).

    Over the pixels in the input's darkest 30% of luma (:data:`DARK_FRACTION`, BT.601) that lie in
    the flatter half of the output (the gradient magnitude of the output's luma after a Gaussian blur
    of sigma 2, :data:`FLAT_SIGMA`, at or below its median over the image), the median of
    ``sqrt((var Cb + var Cr) / 2)``: the variances of the output's BT.601 chroma, on a 0-255 scale,
    over 5 x 5 windows (:data:`WINDOW`; reflect-101 border). Score the input itself as
    ``dark_colour_noise(input, input)``.

    Raises:
        ImageError: images that are not RGB arrays of one shape (or bad samples).
    """
    x, y = _rgb(input, "input"), _rgb(output, "output")
    if x.shape != y.shape:
        raise ImageError(f"input and output must have the same shape, got {x.shape} and {y.shape}")
    dark = _luma(x) <= np.quantile(_luma(x), DARK_FRACTION)
    smooth = cv2.GaussianBlur(_luma(y), (0, 0), FLAT_SIGMA)
    gy, gx = np.gradient(smooth)
    gradient = np.hypot(gx, gy)
    chosen = dark & (gradient <= np.median(gradient))
    if not chosen.any():
        return float("nan")
    luma = _luma(y)
    cb, cr = ((y[..., c] - luma) * (0.5 / (1.0 - w)) * 255.0 for c, w in ((2, BT601_LUMA_WEIGHTS[2]),
                                                                            (0, BT601_LUMA_WEIGHTS[0])))
    variances = []
    for plane in (cb, cr):
        mean = cv2.blur(plane, (WINDOW, WINDOW))
        variances.append(np.maximum(cv2.blur(plane * plane, (WINDOW, WINDOW)) - mean * mean, 0.0))
    return float(np.median(np.sqrt((variances[0] + variances[1]) / 2)[chosen]))


def clipped_fraction(image: np.ndarray) -> float:
    """Fraction of the pixels of ``image`` with a channel at white: 255 on an 8-bit scale (a float
    value that rounds to it, >= 254.5 / 255).

    Raises:
        ImageError: not an RGB array (or bad samples).
    """
    rgb = _rgb(image, "image")
    return float(np.mean(rgb.max(axis=2) >= 254.5 / 255.0))
