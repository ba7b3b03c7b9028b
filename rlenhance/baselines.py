"""Classical (non-learned) baselines for side-by-side comparisons: low light, denoising, completion.

Images are numpy float32 arrays in [0, 1], channel order RGB (OpenCV's BGR order is never used). The low-light
functions take and return RGB (H, W, 3); the denoising and completion functions accept gray (H, W) / (H, W, 1) or
RGB (H, W, 3) and return the same shape. Three registries map method names to functions, one per task:
:data:`LOWLIGHT_BASELINES`, :data:`DENOISE_BASELINES` and :data:`COMPLETION_BASELINES`. BM3D is optional
(:func:`baseline_missing`); :func:`oracle_global` is no method but an upper bound fitted with the reference.

Example:
    >>> import numpy as np
    >>> noisy = np.random.default_rng(0).normal(0.5, 25 / 255, (32, 32)).astype(np.float32)
    >>> DENOISE_BASELINES["median"](noisy, sigma=25).shape
    (32, 32)
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import cv2
import numpy as np

from rlenhance.errors import ImageError
from rlenhance.io import MASK_THRESHOLD


def auto_gamma(image: np.ndarray, *, target: float = 0.5, eps: float = 1e-4) -> np.ndarray:
    """Global gamma chosen so the mean brightness maps to ``target``: ``x ** (log target / log mean)``."""
    mean = float(np.clip(image.mean(), eps, 1 - eps))
    gamma = np.log(target) / np.log(mean)
    return np.power(np.clip(image, 0.0, 1.0), gamma).astype(np.float32)


def _on_luma(image: np.ndarray, fn) -> np.ndarray:
    """Apply an 8-bit luma operation in YCrCb space, keeping chroma (RGB in, RGB out)."""
    u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    ycrcb = cv2.cvtColor(u8, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = fn(np.ascontiguousarray(ycrcb[..., 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB).astype(np.float32) / 255.0


def histogram_equalization(image: np.ndarray) -> np.ndarray:
    """Global histogram equalisation of the luma channel (OpenCV ``equalizeHist``)."""
    return _on_luma(image, cv2.equalizeHist)


def clahe(image: np.ndarray, *, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the luma channel."""
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    return _on_luma(image, op.apply)


#: Defaults of :func:`global_curve`: those of the shipped low-light model (the Enhancer's defaults).
GLOBAL_CURVE_TARGET = 0.4
GLOBAL_CURVE_STEPS = 10
_ALPHA_BISECTIONS = 30
_CURVE_LEVELS = 65536


def global_curve(image: np.ndarray, *, target: float = GLOBAL_CURVE_TARGET,
                 steps: int = GLOBAL_CURVE_STEPS) -> np.ndarray:
    """One light-enhancement curve for the whole image, repeated: ``x <- x + alpha x (1 - x)``
    ``steps`` times (:func:`rlenhance.ops.le_curve_iterative`) with the one ``alpha`` in [-1, 1] whose
    result has mean brightness ``target`` (over pixels and channels), or the end of [-1, 1] nearest to
    it where none reaches it (a black image stays black).

    ``alpha`` is found by bisection on a 65,536-level histogram of the image: the classical rival of a
    curve policy that picks one alpha everywhere.

    Args:
        image: float array (H, W), (H, W, 1) or (H, W, 3) in [0, 1] (values outside are clipped).
        target: the mean brightness to reach, in (0, 1).
        steps: how many times the curve is applied, >= 1.

    Returns:
        float32 array of the image's shape, in [0, 1].

    Raises:
        ImageError: not such an array.
        ValueError: ``target`` or ``steps`` out of range.

    Example:
        >>> dark = np.linspace(0.02, 0.2, 64, dtype=np.float32).reshape(8, 8)
        >>> round(float(global_curve(dark, target=0.4).mean()), 4)
        0.4
    """
    import torch  # noqa: PLC0415 - the registry imports this module without torch

    from rlenhance.ops.curves import le_curve_iterative  # noqa: PLC0415

    image = np.clip(_check_image(image, "global_curve"), 0.0, 1.0)
    if isinstance(target, bool) or not isinstance(target, (int, float, np.floating)) or not 0 < target < 1:
        raise ValueError(f"global_curve: target must be a mean brightness in (0, 1), got {target!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"global_curve: steps must be an integer >= 1, got {steps!r}")
    bins = np.minimum((image.ravel() * _CURVE_LEVELS).astype(np.int64), _CURVE_LEVELS - 1)
    counts = np.bincount(bins, minlength=_CURVE_LEVELS)
    used = counts > 0
    levels = torch.from_numpy(np.bincount(bins, weights=image.ravel(), minlength=_CURVE_LEVELS)[used]
                              / counts[used]).view(1, 1, -1)
    weights = torch.from_numpy(counts[used] / image.size).view(1, 1, -1)
    low, high = -1.0, 1.0
    for _ in range(_ALPHA_BISECTIONS):
        alpha = (low + high) / 2
        if float((le_curve_iterative(levels, alpha, int(steps)) * weights).sum()) < target:
            low = alpha
        else:
            high = alpha
    flat = torch.from_numpy(image).view(1, 1, -1)
    out = le_curve_iterative(flat, (low + high) / 2, int(steps)).clamp_(0.0, 1.0)
    return out.view(image.shape).numpy()


def oracle_global(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The best global tone curve fitted with the reference: per channel, the monotone (non-decreasing)
    mapping of the image's values closest to ``reference`` in least squares (isotonic regression,
    :func:`scipy.optimize.isotonic_regression`). No method but the upper bound of every global curve.

    Args:
        image: the degraded image, float array (H, W), (H, W, 1) or (H, W, 3) in [0, 1].
        reference: its reference, a float array of the same shape.

    Returns:
        float32 array of the image's shape, in [0, 1].

    Raises:
        ImageError: either is not such an array (None: no reference), or their shapes differ.

    Example:
        >>> dark = np.linspace(0.0, 0.2, 16, dtype=np.float32).reshape(4, 4)
        >>> bool(np.allclose(oracle_global(dark, np.sqrt(dark)), np.sqrt(dark)))  # a monotone relation: exact
        True
    """
    from scipy.optimize import isotonic_regression  # noqa: PLC0415 - scipy's import is slow; on first use

    if reference is None:
        raise ImageError("oracle_global: needs the reference (the mapping is fitted to it); got None")
    image = _check_image(image, "oracle_global")
    reference = _check_image(reference, "oracle_global (reference)", copy=False)
    if reference.shape != image.shape:
        raise ImageError(f"oracle_global: the reference's shape {reference.shape} differs from the image's "
                         f"{image.shape}")
    planes = image.reshape(image.shape[0] * image.shape[1], -1)
    targets = reference.reshape(planes.shape)
    out = np.empty_like(planes)
    for c in range(planes.shape[1]):
        values, inverse, counts = np.unique(planes[:, c], return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=targets[:, c], minlength=len(values))
        fitted = isotonic_regression(sums / counts, weights=counts.astype(np.float64), increasing=True).x
        out[:, c] = np.clip(fitted, 0.0, 1.0)[inverse]
    return out.reshape(image.shape)


# Denoising


class DenoiseSettings(NamedTuple):
    """The OpenCV filter parameters tuned for one Gaussian noise level (see :data:`DENOISE_SETTINGS`).

    Attributes:
        noise_sigma: noise standard deviation the row was tuned for, 0-255 scale.
        gaussian_sigma: standard deviation of the Gaussian blur, in pixels.
        median_ksize: side of the median window (3 or 5: OpenCV's float32 median).
        median_passes: how many times the median filter is applied.
        bilateral_diameter: diameter of the bilateral filter's pixel neighbourhood.
        bilateral_sigma_color: range (intensity) standard deviation, on the [0, 1] scale.
        bilateral_sigma_space: spatial standard deviation of the bilateral filter, in pixels.
    """

    noise_sigma: float
    gaussian_sigma: float
    median_ksize: int
    median_passes: int
    bilateral_diameter: int
    bilateral_sigma_color: float
    bilateral_sigma_space: float


#: One row per tuned noise level, ascending: the PSNR-best setting of a grid search on BSD train images.
DENOISE_SETTINGS: tuple[DenoiseSettings, ...] = (
    DenoiseSettings(10.0, 0.6, 3, 1, 9, 0.1, 1.0),
    DenoiseSettings(15.0, 0.75, 3, 2, 9, 0.2, 1.0),
    DenoiseSettings(25.0, 0.9, 3, 3, 9, 0.3, 1.5),
    DenoiseSettings(35.0, 1.25, 3, 4, 9, 0.5, 1.5),
    DenoiseSettings(50.0, 1.75, 5, 3, 9, 1.0, 2.0),
    DenoiseSettings(75.0, 2.25, 5, 4, 9, 2.0, 3.0),
)
#: The Gaussian kernel is truncated at this many standard deviations: radius ``int(3 s + 0.5)``, as SciPy.
GAUSSIAN_TRUNCATE = 3.0
#: Median window sides OpenCV filters in float32 (larger windows need 8-bit input).
MEDIAN_FLOAT_KSIZES = (3, 5)
#: Pixel scale of the noise level ``sigma`` (DnCNN / PixelRL: 0-255).
NOISE_SCALE = 255.0


def _check_image(image: Any, who: str, *, copy: bool = True, samples: bool = False) -> np.ndarray:
    """Validate a float image (H, W), (H, W, 1) or (H, W, 3); return it as contiguous float32 (``copy=False``:
    as it is; ``samples``: uint8 / uint16 accepted, returned as they are). Raises ImageError."""
    integer = samples and isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16)
    if not isinstance(image, np.ndarray) or not (integer or np.issubdtype(image.dtype, np.floating)) \
            or image.size == 0 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ImageError(f"{who}: image must be a float{' (or uint8 / uint16)' if samples else ''} array (H, W), "
                         "(H, W, 1) or (H, W, 3) (gray or RGB); got "
                         f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}")
    return np.ascontiguousarray(image, dtype=np.float32) if copy and not integer else image


def _check_sigma(sigma: Any, who: str) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)) \
            or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{who}: sigma must be a finite noise level >= 0 on the 0-255 scale, got {sigma!r}")
    return float(sigma)


def denoise_settings(sigma: float) -> DenoiseSettings:
    """The row of :data:`DENOISE_SETTINGS` tuned for the noise level nearest ``sigma`` (ties: the lower).

    Args:
        sigma: Gaussian noise standard deviation on the 0-255 scale, >= 0.

    Raises:
        ValueError: ``sigma`` is negative or not finite.
    """
    sigma = _check_sigma(sigma, "denoise_settings")
    return min(DENOISE_SETTINGS, key=lambda row: (abs(row.noise_sigma - sigma), row.noise_sigma))


def _same_shape(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing single channel; restore ``like``'s shape, clip to [0, 1], float32."""
    return np.clip(out.reshape(like.shape), 0.0, 1.0).astype(np.float32, copy=False)


def gaussian_denoise(image: np.ndarray, *, sigma: float = 25.0, blur_sigma: float | None = None) -> np.ndarray:
    """Gaussian blur whose width suits the noise level (OpenCV ``GaussianBlur``, ``BORDER_REFLECT``, radius
    ``int(3 s + 0.5)``).

    Args:
        image: noisy image, float (H, W), (H, W, 1) or (H, W, 3), nominally in [0, 1] (unclipped noise accepted).
        sigma: noise standard deviation on the 0-255 scale; picks ``s`` from :data:`DENOISE_SETTINGS`.
        blur_sigma: the blur's standard deviation ``s`` in pixels (overrides the table), > 0.

    Returns:
        float32, same shape as ``image``, clipped to [0, 1].

    Raises:
        ImageError: bad image. ValueError: bad ``sigma`` / ``blur_sigma``.
    """
    image = _check_image(image, "gaussian_denoise")
    s = denoise_settings(sigma).gaussian_sigma if blur_sigma is None else float(blur_sigma)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"gaussian_denoise: blur_sigma must be a finite number > 0, got {blur_sigma!r}")
    side = 2 * int(GAUSSIAN_TRUNCATE * s + 0.5) + 1
    return _same_shape(cv2.GaussianBlur(image, (side, side), s, borderType=cv2.BORDER_REFLECT), image)


def median_denoise(image: np.ndarray, *, sigma: float = 25.0, ksize: int | None = None,
                   passes: int | None = None) -> np.ndarray:
    """Median filter, applied ``passes`` times (OpenCV ``medianBlur`` in float32: borders replicated).

    Args:
        image: noisy image, float (H, W), (H, W, 1) or (H, W, 3), nominally in [0, 1]; channels filtered apart.
        sigma: noise standard deviation on the 0-255 scale; picks the window and passes from the table.
        ksize: window side, 3 or 5 (overrides the table).
        passes: number of passes, >= 1 (overrides the table).

    Returns:
        float32, same shape as ``image``, clipped to [0, 1].

    Raises:
        ImageError: bad image. ValueError: bad ``sigma``, ``ksize`` or ``passes``.
    """
    image = _check_image(image, "median_denoise")
    row = denoise_settings(sigma)
    ksize = row.median_ksize if ksize is None else ksize
    passes = row.median_passes if passes is None else passes
    if ksize not in MEDIAN_FLOAT_KSIZES:
        raise ValueError(f"median_denoise: ksize must be one of {MEDIAN_FLOAT_KSIZES} (OpenCV's float32 median), "
                         f"got {ksize!r}")
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
        raise ValueError(f"median_denoise: passes must be an integer >= 1, got {passes!r}")
    out = image
    for _ in range(int(passes)):
        out = cv2.medianBlur(out, int(ksize))
    return _same_shape(out, image)


def bilateral_denoise(image: np.ndarray, *, sigma: float = 25.0, diameter: int | None = None,
                      sigma_color: float | None = None, sigma_space: float | None = None) -> np.ndarray:
    """Edge-preserving bilateral filter (OpenCV ``bilateralFilter``, ``BORDER_REFLECT``).

    Args:
        image: noisy image, float (H, W), (H, W, 1) or (H, W, 3), nominally in [0, 1]; RGB: the range weight
            uses the colour distance.
        sigma: noise standard deviation on the 0-255 scale; picks the parameters from :data:`DENOISE_SETTINGS`.
        diameter: neighbourhood diameter in pixels, >= 1 (overrides the table).
        sigma_color: range standard deviation on the [0, 1] scale, > 0 (overrides the table).
        sigma_space: spatial standard deviation in pixels, > 0 (overrides the table).

    Returns:
        float32, same shape as ``image``, clipped to [0, 1].

    Raises:
        ImageError: bad image. ValueError: bad ``sigma`` or filter parameters.
    """
    image = _check_image(image, "bilateral_denoise")
    row = denoise_settings(sigma)
    d = row.bilateral_diameter if diameter is None else diameter
    sc = row.bilateral_sigma_color if sigma_color is None else float(sigma_color)
    ss = row.bilateral_sigma_space if sigma_space is None else float(sigma_space)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 \
            or not (math.isfinite(sc) and sc > 0 and math.isfinite(ss) and ss > 0):
        raise ValueError(f"bilateral_denoise: expected diameter an integer >= 1 and sigma_color, sigma_space finite "
                         f"> 0; got {d!r}, {sc!r}, {ss!r}")
    return _same_shape(cv2.bilateralFilter(image, int(d), sc, ss, borderType=cv2.BORDER_REFLECT), image)


def bm3d_denoise(image: np.ndarray, *, sigma: float = 25.0, threads: int = 1) -> np.ndarray:
    """BM3D (Dabov et al., TIP 2007) through the optional ``bm3d`` package (:func:`baseline_missing`).

    Args:
        image: noisy image, float (H, W), (H, W, 1) or (H, W, 3), nominally in [0, 1].
        sigma: noise standard deviation on the 0-255 scale.
        threads: threads of the package's binary, >= 0 (0: one per core); only 1 is reproducible.

    Returns:
        float32, same shape as ``image``, clipped to [0, 1].

    Raises:
        ModuleNotFoundError: ``bm3d`` is not installed (the message says how to install it).
        ImageError: bad image. ValueError: bad ``sigma`` or ``threads``.
    """
    image = _check_image(image, "bm3d_denoise")
    sigma = _check_sigma(sigma, "bm3d_denoise")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(f"bm3d_denoise: threads must be an integer >= 0 (0: one per core), got {threads!r}")
    try:
        import bm3d  # optional; imported here so rlenhance works without it
    except ImportError as exc:
        raise ModuleNotFoundError(f"bm3d_denoise: the optional package bm3d is not installed; "
                                  f"{OPTIONAL_PACKAGES['bm3d']}") from exc
    std = sigma / NOISE_SCALE
    profile = bm3d.BM3DProfile()  # the package's default ("np")
    profile.num_threads = int(threads)
    if image.ndim == 3 and image.shape[2] == 3:
        out = bm3d.bm3d_rgb(image.astype(np.float64), std, profile=profile)
    else:
        out = bm3d.bm3d(image.reshape(image.shape[:2]).astype(np.float64), std, profile=profile)
    return _same_shape(np.asarray(out, dtype=np.float32), image)


# Completion (inpainting)

#: OpenCV's float32 Telea inpainting errs by up to +-1 absolute (opencv/opencv#25404): inpaint on this scale.
INPAINT_SCALE = 65535.0


def _check_mask(mask: Any, image: np.ndarray, who: str) -> np.ndarray:
    """The hole as a uint8 (H, W) array (1 = missing) from a bool / numeric (H, W) or (H, W, 1) mask."""
    if not isinstance(mask, np.ndarray) or mask.ndim not in (2, 3) or (mask.ndim == 3 and mask.shape[2] != 1) \
            or not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.number)):
        raise ImageError(f"{who}: mask must be a bool or numeric array (H, W) or (H, W, 1), 1 = missing pixel; got "
                         f"{getattr(mask, 'shape', type(mask).__name__)} {getattr(mask, 'dtype', '')}")
    if mask.shape[:2] != image.shape[:2]:
        raise ImageError(f"{who}: mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                         f"{image.shape[0]}x{image.shape[1]} (HxW); they must match")
    return np.ascontiguousarray(mask.reshape(mask.shape[:2]) > MASK_THRESHOLD, dtype=np.uint8)


def _inpaint(image: np.ndarray, mask: np.ndarray, radius: float, method: int, who: str) -> np.ndarray:
    image = _check_image(image, who)
    hole = _check_mask(mask, image, who)
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"{who}: radius must be a finite number > 0 (pixels), got {radius!r}")
    planes = image.reshape(*image.shape[:2], -1)
    filled = np.stack([cv2.inpaint(np.ascontiguousarray(planes[..., c] * np.float32(INPAINT_SCALE)), hole,
                                   float(radius), method) for c in range(planes.shape[2])], axis=-1)
    filled = np.clip(filled / np.float32(INPAINT_SCALE), 0.0, 1.0).reshape(image.shape)
    inside = hole.astype(bool).reshape(*hole.shape, *([1] if image.ndim == 3 else []))
    return np.where(inside, filled, image).astype(np.float32)


def inpaint_telea(image: np.ndarray, mask: np.ndarray, *, radius: float = 3.0) -> np.ndarray:
    """Fill the hole by Telea's fast-marching inpainting (OpenCV ``inpaint``, ``INPAINT_TELEA``), in float32
    (:data:`INPAINT_SCALE`); known pixels are returned unchanged.

    Args:
        image: float (H, W), (H, W, 1) or (H, W, 3) (gray or RGB) in [0, 1]; values inside the hole are ignored.
        mask: bool or numeric (H, W) or (H, W, 1); values above 0.5 (True) mark missing pixels.
        radius: neighbourhood radius of each inpainted pixel, in pixels.

    Returns:
        float32, same shape as ``image``, in [0, 1]; equal to ``image`` wherever the mask is 0.

    Raises:
        ImageError: bad image or mask, or their sizes differ. ValueError: bad ``radius``.
    """
    return _inpaint(image, mask, radius, cv2.INPAINT_TELEA, "inpaint_telea")


def inpaint_navier_stokes(image: np.ndarray, mask: np.ndarray, *, radius: float = 3.0) -> np.ndarray:
    """Fill the hole by Bertalmio et al.'s Navier-Stokes inpainting (OpenCV ``INPAINT_NS``).

    Same arguments, result and errors as :func:`inpaint_telea`.
    """
    return _inpaint(image, mask, radius, cv2.INPAINT_NS, "inpaint_navier_stokes")


# Registries
#: Optional packages some baselines need, with how to install them.
OPTIONAL_PACKAGES: Mapping[str, str] = MappingProxyType({
    "bm3d": "pip install bm3d (free for non-commercial use only; not a dependency of rlenhance)"})
#: Baseline name -> the optional package it imports.
BASELINE_PACKAGES: Mapping[str, str] = MappingProxyType({"bm3d": "bm3d"})

#: Low light: ``fn(image)`` with image RGB float32 (H, W, 3) in [0, 1] -> same.
LOWLIGHT_BASELINES: Mapping[str, Callable[..., np.ndarray]] = MappingProxyType(
    {"auto-gamma": auto_gamma, "histeq": histogram_equalization, "clahe": clahe, "global-curve": global_curve})
#: Denoising: ``fn(image, sigma=...)``, image gray or RGB float32 (H, W[, C]), sigma on the 0-255
#: scale -> same shape in [0, 1]. "bm3d" needs the optional package (see :func:`baseline_missing`).
DENOISE_BASELINES: Mapping[str, Callable[..., np.ndarray]] = MappingProxyType(
    {"gaussian": gaussian_denoise, "median": median_denoise, "bilateral": bilateral_denoise, "bm3d": bm3d_denoise})
#: Completion: ``fn(image, mask)``, image gray or RGB float32 (H, W[, C]), mask (H, W) with 1 = missing
#: -> same shape in [0, 1], known pixels unchanged.
COMPLETION_BASELINES: Mapping[str, Callable[..., np.ndarray]] = MappingProxyType(
    {"telea": inpaint_telea, "navier-stokes": inpaint_navier_stokes})


def baseline_missing(name: str) -> str | None:
    """Why the baseline ``name`` cannot run here (its optional package is absent), or None if it can."""
    package = BASELINE_PACKAGES.get(name)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return OPTIONAL_PACKAGES[package]
