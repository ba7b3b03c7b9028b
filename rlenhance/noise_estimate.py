"""The noise level of an image whose level is unknown (real noise): :func:`estimate_noise_sigma` for the
whole image, :func:`estimate_noise_map` at each pixel where it varies; 0-255 scale, as the denoisers'
``sigma`` (:data:`rlenhance.baselines.NOISE_SCALE`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rlenhance.baselines import NOISE_SCALE, _check_image
from rlenhance.errors import ImageError

__all__ = ["NOISE_WINDOW", "estimate_noise_map", "estimate_noise_sigma"]


#: :func:`estimate_noise_map`'s default block side in pixels.
NOISE_WINDOW = 64
#: Median absolute value of a standard normal variable (Donoho's MAD estimator divides by it).
_GAUSSIAN_MAD = 0.6744897501960817
#: Side of the texture patches and the share of pure-noise patches kept (Liu, Tanaka and Okutomi's 7 and 0.99).
_NOISE_PATCH, _NOISE_CONFIDENCE = 7, 0.99
_NOISE_ITERATIONS = 10
#: A plane of more pixels than this is measured on a sample of :data:`_NOISE_BLOCK`-pixel blocks.
_NOISE_SAMPLE_PIXELS = 2**22
_NOISE_BLOCK = 256


def _box_sum(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sums of ``a`` over every ``height`` x ``width`` window inside it (valid positions only)."""
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    np.cumsum(np.cumsum(a, axis=0), axis=1, out=c[1:, 1:])
    return c[height:, width:] - c[:-height, width:] - c[height:, :-width] + c[:-height, :-width]


def _noise_blocks(height: int, width: int) -> list[tuple[slice, slice]]:
    """The parts of a ``height`` x ``width`` plane :func:`estimate_noise_sigma` measures: the whole plane up
    to :data:`_NOISE_SAMPLE_PIXELS` pixels, beyond a regular grid of square blocks spread evenly over it."""
    if height * width <= _NOISE_SAMPLE_PIXELS or min(height, width) < _NOISE_BLOCK:
        return [(slice(0, height), slice(0, width))]
    count = _NOISE_SAMPLE_PIXELS // _NOISE_BLOCK**2
    rows = min(height // _NOISE_BLOCK, max(1, round(math.sqrt(count * height / width))))
    cols = min(width // _NOISE_BLOCK, max(1, count // rows))
    tops = np.linspace(0, height - _NOISE_BLOCK, rows).round().astype(int)
    lefts = np.linspace(0, width - _NOISE_BLOCK, cols).round().astype(int)
    return [(slice(int(y), int(y) + _NOISE_BLOCK), slice(int(x), int(x) + _NOISE_BLOCK)) for y in tops for x in lefts]


def _block_noise_statistics(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`_plane_noise_sigma` reads of one float64 (h, w) block: the absolute diagonal Haar
    coefficients, those that touch no clipped pixel, and the texture and the absolute centre
    coefficient of each 7 x 7 patch that touches none (empty below 8 x 8 pixels), all flat."""
    p = _NOISE_PATCH
    diagonal = np.abs(block[:-1, :-1] - block[:-1, 1:] - block[1:, :-1] + block[1:, 1:]) / 2
    # a coefficient or patch that touches a clipped pixel (0 or 1) measures the clipping: left out
    clipped = ((block == 0.0) | (block == 1.0)).astype(np.float64)
    free = diagonal[_box_sum(clipped, 2, 2) == 0]
    if min(block.shape) <= p:
        return diagonal.ravel(), free, np.empty(0), np.empty(0)
    # texture of each p x p patch: its squared horizontal and vertical differences, summed
    h, w = block.shape[0] - p + 1, block.shape[1] - p + 1
    texture = (_box_sum(np.square(np.diff(block, axis=1)), p, p - 1)[:h, :w]
               + _box_sum(np.square(np.diff(block, axis=0)), p - 1, p)[:h, :w])
    unclipped = _box_sum(clipped, p, p)[:h, :w] == 0
    return diagonal.ravel(), free, texture[unclipped], diagonal[p // 2:p // 2 + h, p // 2:p // 2 + w][unclipped]


def _unit_block(block: np.ndarray) -> np.ndarray:
    """A block of a plane as float32: uint8 / uint16 samples scaled by their range, floats as they are."""
    if block.dtype in (np.uint8, np.uint16):
        from rlenhance.io import as_unit_float  # noqa: PLC0415 - imports torch

        return as_unit_float(block)
    return block.astype(np.float32)


def _plane_noise_sigma(plane: np.ndarray) -> float:
    """:func:`estimate_noise_sigma` of one (H, W) plane, in the image's units (float64 on :func:`_noise_blocks`)."""
    p = _NOISE_PATCH
    parts = [_block_noise_statistics(_unit_block(plane[rows, cols]).astype(np.float64))
             for rows, cols in _noise_blocks(*plane.shape)]
    free = np.concatenate([part[1] for part in parts])
    if not free.size:
        free = np.concatenate([part[0] for part in parts])
    sigma = float(np.median(free)) / _GAUSSIAN_MAD
    del free
    if min(plane.shape) <= p:
        return sigma
    texture = np.concatenate([part[2] for part in parts])
    centres = np.concatenate([part[3] for part in parts])
    del parts
    # pure noise of level s gives a texture ~ s^2 Gamma(n / 2, 2 tr / n) (Liu et al. 2012): its quantile over s^2
    n, trace = p * p, 4 * p * (p - 1)
    from scipy import special  # noqa: PLC0415 - half a second of imports, for this estimate only

    threshold = 2 * trace / n * float(special.gammaincinv(n / 2, _NOISE_CONFIDENCE))
    for _ in range(_NOISE_ITERATIONS):
        weak = texture < sigma * sigma * threshold
        if np.count_nonzero(weak) < n:
            break
        refined = float(np.median(centres[weak])) / _GAUSSIAN_MAD
        if abs(refined - sigma) <= 1e-6 * max(sigma, 1e-12):
            return refined
        sigma = refined
    return sigma


def estimate_noise_sigma(image: np.ndarray) -> float:
    """The standard deviation of additive white Gaussian noise in an image, estimated from the image
    alone, on the 0-255 scale: the ``sigma`` a denoiser needs when the noise level is unknown.

    Donoho's wavelet estimator (MAD of the finest diagonal Haar coefficients over 0.6745), taken only
    on weak-texture 7 x 7 patches (Liu, Tanaka and Okutomi 2012) and refined until it settles; per channel,
    averaged. Coefficients that touch a pixel at 0 or 1 are left out (clipped noise). A plane above 4
    megapixels is measured on a sample of blocks (:func:`_noise_blocks`); the image is never copied whole.

    Args:
        image: noisy image, float (H, W), (H, W, 1) or (H, W, 3), nominally in [0, 1] (unclipped
            values accepted), or its uint8 / uint16 samples (scaled by their range a block at a
            time: the same estimate), at least 2 x 2 pixels (below 8 x 8 the whole image's estimate).

    Returns:
        the estimated sigma, >= 0, 0-255 scale (:data:`NOISE_SCALE`).

    Raises:
        ImageError: bad image, or smaller than 2 x 2 pixels.

    Example:
        >>> clean = np.full((64, 64), 0.5, np.float32)
        >>> noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
        >>> abs(estimate_noise_sigma(noisy) - 25) < 1
        True
    """
    image = _check_image(image, "estimate_noise_sigma", copy=False, samples=True)
    if min(image.shape[:2]) < 2:
        raise ImageError(f"estimate_noise_sigma: image of {image.shape[0]}x{image.shape[1]} pixels; the wavelet "
                         "estimate needs at least 2x2")
    x = image.reshape(*image.shape[:2], -1)
    return float(np.mean([_plane_noise_sigma(x[..., c]) for c in range(x.shape[2])])) * NOISE_SCALE


def estimate_noise_map(image: np.ndarray, window: int = NOISE_WINDOW) -> np.ndarray:
    """The noise level at each pixel of an image whose noise varies across it, on the 0-255 scale:
    :func:`estimate_noise_sigma` of each block of about ``window`` x ``window`` pixels (an image smaller
    than ``window`` is one block), bilinearly interpolated between the blocks' centres.

    Args:
        image: as :func:`estimate_noise_sigma`'s.
        window: side of the blocks in pixels (>= 8).

    Returns:
        float32 (H, W), the estimated levels (>= 0, 0-255 scale).

    Raises:
        ImageError: as :func:`estimate_noise_sigma`.
        ValueError: ``window`` is not an integer >= 8.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 8:
        raise ValueError(f"window: expected an integer >= 8 (pixels), got {window!r}")
    image = _check_image(image, "estimate_noise_map", copy=False, samples=True)
    height, width = image.shape[:2]
    rows, cols = (np.linspace(0, size, max(1, size // window) + 1).round().astype(int) for size in (height, width))
    levels = np.array([[estimate_noise_sigma(image[top:bottom, left:right])
                        for left, right in zip(cols[:-1], cols[1:])] for top, bottom in zip(rows[:-1], rows[1:])],
                      dtype=np.float32)
    return cv2.resize(levels, (width, height), interpolation=cv2.INTER_LINEAR)
