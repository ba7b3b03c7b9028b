"""The clean stage's native kernels (``csrc/clean.c``): :func:`clean_prepare_native` and
:func:`clean_finish_native`, the per-pixel parts of :func:`rlenhance.ops.clean.clean_enhanced` on numpy
arrays, with the library, thread and status checks of :mod:`rlenhance.ops.native`."""

from __future__ import annotations

import ctypes

import numpy as np

from rlenhance.ops.native import _check_status, _checked_threads_and_library
from rlenhance.ops.native_build import _CleanArgs

__all__ = ["clean_finish_native", "clean_prepare_native"]

_NUMPY_SAMPLES = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.uint16))
_F32 = _NUMPY_SAMPLES[:1]


def _pixels(array: np.ndarray, name: str, n: int, per_pixel: int, dtypes: tuple[np.dtype, ...]) -> int:
    """The address of a C-contiguous array of ``n * per_pixel`` values of one of ``dtypes`` (ValueError otherwise)."""
    if not isinstance(array, np.ndarray) or array.dtype not in dtypes or not array.flags.c_contiguous \
            or array.size != n * per_pixel:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"{name}: expected a C-contiguous array of {n} x {per_pixel} values of "
                         f"{'/'.join(map(str, dtypes))}; got {got}")
    return array.ctypes.data


def _clean_call(entry: str, x: np.ndarray, y: np.ndarray, num_threads: int | None, **fields: object) -> _CleanArgs:
    threads, library = _checked_threads_and_library(num_threads, entry)
    n = y.size // 3
    args = _CleanArgs(x=_pixels(x, "x", n, 3, _NUMPY_SAMPLES), y=_pixels(y, "y", n, 3, _F32),
                      x_type=_NUMPY_SAMPLES.index(x.dtype), n=n, n_threads=max(1, min(threads, n // 65536)), **fields)
    _check_status(getattr(library, entry)(ctypes.byref(args)), "clean")
    return args


def clean_prepare_native(x: np.ndarray, y: np.ndarray, luma: np.ndarray, chroma: np.ndarray, *, eps: float,
                         num_threads: int | None = None) -> int:
    """The planes :func:`rlenhance.ops.clean.clean_enhanced` blurs, with the native kernel (``clean.c``):
    fills ``luma`` (H, W) and ``chroma`` (H, W, 2: B - G, R - G) of ``y``; returns how many pixels have a
    brightening weight ``clamp(L(y) / max(L(x), eps) - 1, 0, 1)`` above 0.

    ``x``: the input, (H, W, 3) float32 in [0, 1] or uint8 / uint16 samples; ``y``: the curves' output,
    float32 (H, W, 3); all C-contiguous (ValueError otherwise). RuntimeError: the kernels are unavailable.
    """
    n = y.size // 3
    return int(_clean_call("clean_prepare", x, y, num_threads, luma=_pixels(luma, "luma", n, 1, _F32),
                           chroma=_pixels(chroma, "chroma", n, 2, _F32), luma_blur=None, luma_dark=None,
                           chroma_blur=None, out=None, out_type=0, eps=float(eps), ramp_start=0.0, ramp_scale=0.0,
                           knee=0.0, knee_drop=0.0, brightened=0).brightened)


def clean_finish_native(x: np.ndarray, y: np.ndarray, luma_blur: np.ndarray, luma_dark: np.ndarray,
                        chroma_blur: np.ndarray, out: np.ndarray, *, eps: float, ramp_start: float, ramp_scale: float,
                        knee: float, knee_drop: float, num_threads: int | None = None) -> np.ndarray:
    """The blend, colour conversion, highlight knee and rounding of :func:`rlenhance.ops.clean.clean_enhanced`
    with the native kernel (``clean.c``), from ``x``, ``y`` (as in :func:`clean_prepare_native`) and the
    blurred planes of :func:`clean_prepare_native` (the luma at two widths: ``luma_dark`` is blended in
    by ``clamp((gain - 1 - ramp_start) ramp_scale, 0, 1)``), into ``out`` (H, W, 3): float32, or uint8 /
    uint16 (``round(255 v)`` / ``(65535 v)``, half to even); ``out`` may be ``y``. Returns ``out``."""
    n = y.size // 3
    _clean_call("clean_finish", x, y, num_threads, luma=None, chroma=None,
                luma_blur=_pixels(luma_blur, "luma_blur", n, 1, _F32),
                luma_dark=_pixels(luma_dark, "luma_dark", n, 1, _F32),
                chroma_blur=_pixels(chroma_blur, "chroma_blur", n, 2, _F32),
                out=_pixels(out, "out", n, 3, _NUMPY_SAMPLES), out_type=_NUMPY_SAMPLES.index(out.dtype),
                eps=float(eps), ramp_start=float(ramp_start), ramp_scale=float(ramp_scale), knee=float(knee),
                knee_drop=float(knee_drop), brightened=0)
    return out
