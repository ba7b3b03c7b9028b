"""Quality metrics that need no ground truth, in numpy / scipy; lower is better for each scored one.

* :func:`niqe`: NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 20(3), 2013) as the authors' MATLAB release
  (``computequality.m``) computes it with its pristine model;
* :func:`loe`: the lightness order error (Wang, Zheng, Hu and Li, IEEE TIP 22(9), 2013) as the widely
  circulated ``LOE.m`` (50-pixel grid by ``imresize``) computes it;
* :func:`clipped_fraction` (blown highlights) and :func:`dark_colour_noise` (colour speckle brightened out of
  the shadows).

Images are numpy arrays, RGB ``(H, W, 3)`` or gray ``(H, W)`` / ``(H, W, 1)``, as ``uint8`` samples or floats
in [0, 1] (``uint16`` samples divided by 65535). Like those MATLAB scripts, every metric scores 8-bit samples:
a float image is quantised as :func:`rlenhance.io.save_image` writes it, so it and its saved PNG score alike.

The pristine model (``niqe_pris_params.npz``, BasicSR 1.4.2's copy of the MATLAB release's
``modelparameters.mat``) is described in the README beside it.

Example:
    >>> import numpy as np
    >>> from skimage import data
    >>> round(niqe(data.astronaut()), 3)
    3.065
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate1d, gaussian_filter, uniform_filter
from scipy.special import gamma

from rlenhance.errors import ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS, as_unit_float
from rlenhance.metrics.matlab_resize import imresize

__all__ = ["NIQE_BLOCK", "clipped_fraction", "dark_colour_noise", "loe", "niqe"]

#: Side of NIQE's square blocks at full resolution (the pristine model was fitted on 96 x 96 blocks).
NIQE_BLOCK = 96
#: NIQE's local-normalisation window: 7 x 7 Gaussian of standard deviation 7/6 (``fspecial('gaussian', 7, 7/6)``).
_MSCN_TAPS = 7
_MSCN_SIGMA = 7.0 / 6.0
#: The grid of AGGD shape parameters the MATLAB code searches: 0.2, 0.201, ..., 10.
_ALPHA_GRID = 0.2 + 0.001 * np.arange(9801)
#: MATLAB's rgb2gray weights (first row of the inverse of the NTSC YIQ matrix).
_RGB2GRAY = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]
#: Neighbour offsets (rows, columns) of the four pairwise products: horizontal, vertical, two diagonals.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
#: ``|I - mu|`` below this (on the 0-255 scale) is floating-point residue of an exact zero (see ``_mscn``).
_ROUNDING_RESIDUE = 1e-10
_PARAMS_FILE = Path(__file__).with_name("niqe_pris_params.npz")

#: dark_colour_noise: the input's darkest fraction of pixels (by luma) that it looks at.
DARK_FRACTION = 0.3
#: dark_colour_noise: the Gaussian blur (pixels) of the output luma before its gradient is taken.
FLATNESS_SIGMA = 2.0
#: dark_colour_noise: side of the square window of the local chroma variances.
CHROMA_WINDOW = 5
#: JFIF (full-range BT.601) chroma rows: Cb and Cr of 0-255 RGB, offsets dropped (variances ignore them).
_RGB2CBCR = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])

#: LOE's default grid: images are resized so that their shorter side has this many pixels.
LOE_SIDE = 50


def _samples(image: np.ndarray, name: str) -> np.ndarray:
    """Validate an image and return its 8-bit samples, uint8 ``(H, W)`` or ``(H, W, 3)``."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name}: expected a numpy array (H, W, 3) or (H, W), got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ImageError(f"{name}: expected shape (H, W, 3), (H, W, 1) or (H, W), got {image.shape}")
    if image.dtype == np.uint8:
        return image
    unit = as_unit_float(image, name=name)  # float32 in [0, 1]
    return np.rint(unit * np.float32(255)).astype(np.uint8)


# --------------------------------------------------------------------------- NIQE


@functools.lru_cache(maxsize=1)
def _pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The MATLAB release's pristine MVG: mean (36,) and covariance (36, 36), float64."""
    with np.load(_PARAMS_FILE) as params:
        return params["mu_pris_param"].reshape(-1), params["cov_pris_param"]


def _rgb2gray(samples: np.ndarray) -> np.ndarray:
    """MATLAB's ``rgb2gray`` of uint8 samples (rounded to uint8), as float64 in [0, 255]."""
    if samples.ndim == 2:
        return samples.astype(np.float64)
    gray = samples.astype(np.float64) @ _RGB2GRAY
    return np.clip(np.floor(gray + 0.5), 0, 255)  # MATLAB rounds half away from zero


def _mscn(image: np.ndarray) -> np.ndarray:
    """MSCN coefficients ``(I - mu) / (sigma + 1)`` (replicated borders), rounding residues of ``I - mu`` zeroed."""
    k = np.arange(_MSCN_TAPS) - _MSCN_TAPS // 2
    taps = np.exp(-(k * k) / (2.0 * _MSCN_SIGMA**2))
    taps /= taps.sum()

    def smooth(x: np.ndarray) -> np.ndarray:
        return correlate1d(correlate1d(x, taps, axis=0, mode="nearest"), taps, axis=1, mode="nearest")

    mu = smooth(image)
    sigma = np.sqrt(np.abs(smooth(image * image) - mu * mu))
    deviation = image - mu
    deviation[np.abs(deviation) < _ROUNDING_RESIDUE] = 0.0
    return deviation / (sigma + 1.0)


def _alpha_index(rhatnorm: np.ndarray) -> np.ndarray:
    """Index of the grid shape whose ``r_gam`` is nearest ``rhatnorm`` (MATLAB's: first on ties, 0 for NaN)."""
    r_gam = _r_gamma()
    upper = np.clip(np.searchsorted(r_gam, rhatnorm), 1, r_gam.size - 1)
    lower = upper - 1
    pick_upper = (r_gam[upper] - rhatnorm) ** 2 < (r_gam[lower] - rhatnorm) ** 2
    index = np.where(pick_upper, upper, lower)
    return np.where(np.isnan(rhatnorm), 0, index)


@functools.lru_cache(maxsize=1)
def _r_gamma() -> np.ndarray:
    """``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))`` over :data:`_ALPHA_GRID` (rising from 0.063 to 0.741)."""
    grid = _ALPHA_GRID
    return gamma(2.0 / grid) ** 2 / (gamma(1.0 / grid) * gamma(3.0 / grid))


def _aggd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of ``values`` (N, M), as ``estimateaggdparam.m``: shape, left, right."""
    squares = values * values
    negative = values < 0
    positive = values > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(np.where(negative, squares, 0.0).sum(axis=1) / negative.sum(axis=1))
        right = np.sqrt(np.where(positive, squares, 0.0).sum(axis=1) / positive.sum(axis=1))
        gammahat = left / right
        rhat = np.abs(values).mean(axis=1) ** 2 / squares.mean(axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = _ALPHA_GRID[_alpha_index(rhatnorm)]
    spread = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, left * spread, right * spread


def _block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 AGGD features of every ``block x block`` tile of ``mscn`` (row-major tile order): (N, 18)."""
    rows, cols = mscn.shape[0] // block, mscn.shape[1] // block
    tiles = mscn.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    alpha, left, right = _aggd(tiles.reshape(len(tiles), -1))
    features = [alpha, (left + right) / 2]
    for shift in _SHIFTS:
        products = tiles * np.roll(tiles, shift, axis=(1, 2))
        alpha, left, right = _aggd(products.reshape(len(tiles), -1))
        features += [alpha, (right - left) * gamma(2.0 / alpha) / gamma(1.0 / alpha), left, right]
    return np.stack(features, axis=1)


def _pinv(matrix: np.ndarray) -> np.ndarray:
    """Moore-Penrose inverse with MATLAB's default tolerance ``max(size) * eps(norm)``."""
    u, s, vt = np.linalg.svd(matrix)
    keep = s > max(matrix.shape) * np.spacing(s.max())
    return (vt[keep].T / s[keep]) @ u[:, keep].T


def niqe(image: np.ndarray) -> float:
    """NIQE of one image with the MATLAB release's pristine model (lower is better).

    As ``computequality.m``: MATLAB's ``rgb2gray``, whole 96 x 96 blocks only, 18 AGGD features per block of the
    MSCN coefficients at two scales (the second by :func:`~rlenhance.metrics.matlab_resize.imresize`), a
    Gaussian fitted to all blocks, and ``sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)')``.

    Args:
        image: RGB or gray, ``uint8`` samples or floats in [0, 1] (module notes); H and W at least 96.

    Returns:
        The NIQE score, a float (about 2-4 for sharp natural photos, higher for distorted ones).

    Raises:
        ImageError: a non-array, another shape or dtype, floats outside [0, 1], NaN values (see
            :func:`rlenhance.io.as_unit_float`), an image smaller than one 96 x 96 block, or an
            image without a single block whose features are all defined (e.g. a flat image).
    """
    samples = _samples(image, "niqe: image")
    height, width = samples.shape[:2]
    if height < NIQE_BLOCK or width < NIQE_BLOCK:
        raise ImageError(f"niqe: image of {height}x{width} pixels is smaller than one {NIQE_BLOCK}x{NIQE_BLOCK} "
                         f"block; NIQE needs at least {NIQE_BLOCK} pixels in each direction")
    gray = _rgb2gray(samples)
    gray = gray[: height // NIQE_BLOCK * NIQE_BLOCK, : width // NIQE_BLOCK * NIQE_BLOCK]
    if gray.max() == gray.min():
        raise ImageError(f"niqe: the image is flat (every pixel {gray.flat[0]:g}/255 in gray); NIQE is undefined")

    full = _block_features(_mscn(gray), NIQE_BLOCK)
    half = _block_features(_mscn(imresize(gray, scale=0.5)), NIQE_BLOCK // 2)
    features = np.concatenate([full, half], axis=1)

    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        raise ImageError("niqe: no block of the image has defined features (flat or nearly flat blocks only)")
    mu_d = np.nanmean(features, axis=0)
    cov_d = np.cov(complete, rowvar=False, ddof=1 if len(complete) > 1 else 0)
    mu_p, cov_p = _pristine_model()
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ _pinv((cov_p + cov_d) / 2) @ diff))


# --------------------------------------------------------------------------- LOE


def _lightness_grid(samples: np.ndarray, shape: tuple[int, int] | None) -> np.ndarray:
    """Lightness ``max(R, G, B)`` of 8-bit samples, resized to ``shape`` by MATLAB's imresize (uint8)."""
    lightness = samples.max(axis=2) if samples.ndim == 3 else samples
    return lightness if shape is None else imresize(lightness, output_shape=shape)


def loe(image: np.ndarray, enhanced: np.ndarray, *, side: int | None = LOE_SIDE) -> float:
    """Lightness order error between an image and its enhanced version (lower is better).

    As the ``LOE.m`` variant that resizes: the lightness ``max(R, G, B)`` of both images, resized by MATLAB's
    ``imresize`` (uint8) to a grid whose shorter side has ``side`` pixels; LOE is the mean over grid pixels
    ``x`` of the number of pixels ``y`` with ``(L(x) >= L(y)) xor (Le(x) >= Le(y))``. Other LOE scripts (local
    maxima, subsampling, bilinear resizing) give other numbers.

    Args:
        image: the original image, RGB ``(H, W, 3)`` or gray ``(H, W)`` / ``(H, W, 1)``, ``uint8`` samples
            or floats in [0, 1].
        enhanced: the enhanced image, same height and width (and either layout).
        side: shorter side of the comparison grid (>= 1), or None for the full resolution.

    Returns:
        LOE, a float >= 0: the mean number of flipped orders per grid pixel (0 for the image itself).

    Raises:
        ImageError: a bad image (see :func:`niqe`) or images of different heights / widths.
        ValueError: ``side`` not a positive int or None.
    """
    original = _samples(image, "loe: image")
    result = _samples(enhanced, "loe: enhanced")
    if original.shape[:2] != result.shape[:2]:
        raise ImageError(f"loe: image and enhanced must have the same height and width, got "
                         f"{original.shape[:2]} and {result.shape[:2]}")
    shape = None
    if side is not None:
        if not isinstance(side, (int, np.integer)) or isinstance(side, bool) or side < 1:
            raise ValueError(f"loe: side must be an int >= 1 or None, got {side!r}")
        height, width = original.shape[:2]
        r = side / min(height, width)
        shape = (int(np.floor(height * r + 0.5)), int(np.floor(width * r + 0.5)))  # MATLAB round
    before = _lightness_grid(original, shape).ravel().astype(np.intp)
    after = _lightness_grid(result, shape).ravel().astype(np.intp)

    counts = np.bincount(before * 256 + after, minlength=256 * 256).reshape(256, 256)
    below = counts.cumsum(axis=0).cumsum(axis=1)  # below[a, b] = #{L <= a and Le <= b}
    flips = below[before, 255] + below[255, after] - 2 * below[before, after]
    return float(flips.mean())


# --------------------------------------------------------------------------- clipping, dark-area colour noise


def clipped_fraction(image: np.ndarray, level: float = 1.0) -> float:
    """Fraction of the pixels whose largest 8-bit channel sample is at least ``level * 255``: blown highlights.

    Args:
        image: RGB ``(H, W, 3)`` or gray ``(H, W)`` / ``(H, W, 1)``, ``uint8`` samples or floats in [0, 1].
        level: the threshold, in (0, 1] of white.

    Returns:
        A float in [0, 1].

    Raises:
        ImageError: a bad image (see :func:`niqe`).
        ValueError: ``level`` not in (0, 1].

    Example:
        >>> clipped_fraction(np.array([[0.2, 1.0], [0.999, 1.0]]))
        0.75
    """
    samples = _samples(image, "clipped_fraction: image")
    if not (isinstance(level, (int, float, np.floating)) and 0 < level <= 1):
        raise ValueError(f"clipped_fraction: level must be a number in (0, 1], got {level!r}")
    peak = samples.max(axis=2) if samples.ndim == 3 else samples
    threshold = np.ceil(level * 255 - 1e-6)
    return float(np.mean(peak >= threshold))


def _luma(samples: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of 8-bit RGB samples, float64 on 0-255."""
    return samples.astype(np.float64) @ np.asarray(BT601_LUMA_WEIGHTS)


def dark_colour_noise(input: np.ndarray, output: np.ndarray) -> float:  # noqa: A002 - the measure's own terms
    """Colour noise of an enhancement in the input's dark, flat areas (lower is better).

    The median of ``sqrt((var Cb + var Cr) / 2)`` (the output's JFIF chroma on the 0-255 scale, variances over
    :data:`CHROMA_WINDOW` windows) over the pixels both among the input's darkest :data:`DARK_FRACTION` by
    luma and in the flatter half of the output (gradient of its luma blurred by :data:`FLATNESS_SIGMA`).
    Scoring the input against itself gives the baseline.

    Args:
        input: the photo before enhancement, RGB ``(H, W, 3)``, ``uint8`` samples or floats in [0, 1].
        output: the enhanced photo, same shape.

    Returns:
        A float >= 0 (0-255 chroma scale), NaN when no pixel is both dark and flat.

    Raises:
        ImageError: a bad image (see :func:`niqe`), a gray image, or images of different shapes.

    Example:
        >>> flat = np.full((16, 16, 3), 0.25)
        >>> dark_colour_noise(flat, flat)
        0.0
    """
    before = _samples(input, "dark_colour_noise: input")
    after = _samples(output, "dark_colour_noise: output")
    if before.ndim != 3 or after.ndim != 3:
        raise ImageError("dark_colour_noise: expected RGB images (H, W, 3); colour noise is undefined for gray")
    if before.shape != after.shape:
        raise ImageError(f"dark_colour_noise: input and output must have the same shape, got {before.shape} "
                         f"and {after.shape}")
    luma_in = _luma(before)
    dark = luma_in <= np.percentile(luma_in, 100 * DARK_FRACTION)
    smooth = gaussian_filter(_luma(after), FLATNESS_SIGMA, mode="reflect")
    rows, cols = np.gradient(smooth) if min(smooth.shape) > 1 else (np.zeros_like(smooth),) * 2
    gradient = np.hypot(rows, cols)
    flat = gradient <= np.median(gradient)
    chroma = after.astype(np.float64) @ _RGB2CBCR.T  # (H, W, 2)
    mean = uniform_filter(chroma, size=(CHROMA_WINDOW, CHROMA_WINDOW, 1), mode="reflect")
    mean_sq = uniform_filter(chroma * chroma, size=(CHROMA_WINDOW, CHROMA_WINDOW, 1), mode="reflect")
    variance = mean_sq - mean * mean
    variance[variance < _ROUNDING_RESIDUE] = 0.0  # a flat window's floating-point residue
    noise = np.sqrt(variance.mean(axis=2))
    selected = noise[dark & flat]
    return float(np.median(selected)) if selected.size else float("nan")
