"""Gaussian and box (mean) filters, as OpenCV computes them (reflect-101 border).

Both are separable with symmetric taps, a row pass then a column pass (OpenCV's order); :func:`_linear_at` and
:func:`_columns_at` run the same operations at chosen pixels only, so they give the same values.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence

import torch

from rlenhance.ops._checks import _check_batch, _check_ksize, _check_positive
from rlenhance.ops._padding import _REFLECT_101, _pad2d
from rlenhance.ops._sites import _Sites, _window
from rlenhance.ops._workspace import _carve, _pieces, _work_dtype
from rlenhance.runtime import constant_tensor

__all__ = ["MAX_BLUR_SIGMA", "box_blur2d", "check_blur_sigma", "gaussian_blur2d", "gaussian_kernel1d"]

#: The widest blur of an enhanced image (:func:`check_blur_sigma`), in pixels.
MAX_BLUR_SIGMA = 3.0


def check_blur_sigma(value: float | None, name: str = "blur_sigma", *, none_ok: bool = True) -> float | None:
    """The one rule for :class:`rlenhance.Enhancer`'s ``blur_sigma``: a number ``0 <= value <= MAX_BLUR_SIGMA``
    (pixels; 0: no blur), or None where ``none_ok``. Returns it as a float (None stays None).

    Raises:
        ValueError: naming ``name``, what it got and what is accepted.
    """
    if value is None and none_ok:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value)
            or not 0.0 <= float(value) <= MAX_BLUR_SIGMA):
        raise ValueError(f"{name}: expected the blur's sigma in pixels, 0 <= {name} <= {MAX_BLUR_SIGMA:g} (0: no "
                         f"blur){', or None' if none_ok else ''}; got {value!r}")
    return float(value)


def _symmetric_taps(kernel: Sequence[float]) -> tuple[float, ...]:
    """Centre-first taps (k[r], k[r+1], ..., k[2r]) of a symmetric odd-length 1-D kernel."""
    r = len(kernel) // 2
    return tuple(float(v) for v in kernel[r:])


def _separable_into(xp: torch.Tensor, pad: int, filters: Sequence[tuple[Sequence[float], Sequence[float]]],
                    outs: Sequence[torch.Tensor]) -> None:
    """Separable symmetric filters of ``xp`` (padded by ``pad`` >= every radius) into ``outs``, one per
    ``(row_taps, column_taps)`` of ``filters`` (centre-first); taps summed in pairs, x[i-t] + x[i+t]."""
    b, c, hp, wp = xp.shape
    h, w = hp - 2 * pad, wp - 2 * pad
    n, r = len(filters), max(len(taps) - 1 for row, column in filters for taps in (row, column))
    # row taps per filter, zero-padded to radius r, as (n, 1, 1, 1, 1) columns for the stacked row pass
    row_taps = constant_tensor(tuple(tuple(row) + (0.0,) * (r + 1 - len(row)) for row, _ in filters),
                               xp.dtype, xp.device).t().reshape(r + 1, n, 1, 1, 1, 1)
    for b0, b1, y0, y1 in _pieces(b, h, (r + n + r * n) * c * w, xp.dtype):
        piece = xp[b0:b1, :, y0: y1 + 2 * pad]
        bp, hb = b1 - b0, y1 - y0
        pair_sums, rows, column_sums = _carve(xp, [(r, bp, c, hb + 2 * pad, w), (n, bp, c, hb + 2 * pad, w),
                                                   (r, n, bp, c, hb, w)])
        for t in range(1, r + 1):
            torch.add(piece[..., pad - t: pad - t + w], piece[..., pad + t: pad + t + w], out=pair_sums[t - 1])
        torch.mul(piece[..., pad: pad + w], row_taps[0], out=rows)
        for t in range(1, r + 1):
            rows.addcmul_(pair_sums[t - 1], row_taps[t])
        for t in range(1, r + 1):
            torch.add(rows[..., pad - t: pad - t + hb, :], rows[..., pad + t: pad + t + hb, :], out=column_sums[t - 1])
        for f, ((_, column), out) in enumerate(zip(filters, outs)):
            out = out[b0:b1, :, y0:y1]
            torch.mul(rows[f, ..., pad: pad + hb, :], column[0], out=out)
            for t in range(1, len(column)):
                out.add_(column_sums[t - 1, f], alpha=column[t])


def gaussian_kernel1d(ksize: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel (ksize,) as ``cv2.getGaussianKernel(ksize, sigma)``: ``ksize`` odd and
    positive, ``sigma`` > 0 (pixels); computed in float64, returned in ``dtype`` on ``device``."""
    _check_ksize(ksize)
    _check_positive(sigma, "sigma")
    pos = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2  # on CPU: float64 everywhere
    weights = torch.exp(pos * pos * (-0.5 / (sigma * sigma)))
    return (weights / weights.sum()).to(device=device, dtype=dtype)


def _gaussian_taps(ksize: int, sigma: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    _check_ksize(ksize)
    _check_positive(sigma, "sigma")
    return _gaussian_taps_cached(ksize, float(sigma))


@functools.lru_cache(maxsize=64)
def _gaussian_taps_cached(ksize: int, sigma: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    taps = _symmetric_taps(gaussian_kernel1d(ksize, sigma, dtype=torch.float64).tolist())
    return taps, taps


def _box_taps(ksize: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    _check_ksize(ksize)
    r = ksize // 2
    return (1.0,) * (r + 1), (1.0 / (ksize * ksize),) * (r + 1)  # sum over rows, then mean


def _linear_filter(x: torch.Tensor, taps: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    work = _work_dtype(x)
    pad = len(taps[0]) - 1
    out = torch.empty_like(work)
    _separable_into(_pad2d(work, pad, _REFLECT_101), pad, [taps], [out])
    return out.to(x.dtype)


def gaussian_blur2d(x: torch.Tensor, ksize: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur matching ``cv2.GaussianBlur(x, (ksize, ksize), sigma)`` (reflect-101 border).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        ksize: Odd kernel size (same in both directions).
        sigma: Standard deviation in pixels (same in both directions), > 0.

    Returns:
        Blurred batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``ksize`` is not odd and positive, or ``sigma`` <= 0.
    """
    _check_batch(x)
    return _linear_filter(x, _gaussian_taps(ksize, sigma))


def box_blur2d(x: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Normalised box (mean) filter matching ``cv2.blur(x, (ksize, ksize))`` (reflect-101 border).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        ksize: Odd window size.

    Returns:
        Filtered batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``ksize`` is not odd and positive.
    """
    _check_batch(x)
    return _linear_filter(x, _box_taps(ksize))


# ----------------------------------------------------------------------------- at chosen pixels


def _linear_at(sites: _Sites, q: torch.Tensor, taps: tuple[tuple[float, ...], tuple[float, ...]],
               out: torch.Tensor) -> None:
    """Separable symmetric filter (reflect-101) at pixels ``q``, both passes there, into ``out`` (C, n)."""
    row, column = taps
    r = len(row) - 1
    k = 2 * r + 1
    first = -r * sites.grid[2] - r
    values = sites.gather(sites.padded(_REFLECT_101).view(-1), sites.corners(q, first), _window(r), first)
    values = values.view(k, k, *values.shape[1:]).transpose(0, 1)  # [i, j]: column i of window row j
    rows = torch.mul(values[r], row[0], out=sites.take(values.shape[1:]))  # (k, C, n): every window row
    pair = sites.take(values.shape[1:])
    for t in range(1, r + 1):
        rows.add_(torch.add(values[r - t], values[r + t], out=pair), alpha=row[t])
    torch.mul(rows[r], column[0], out=out)
    for t in range(1, len(column)):
        out.add_(torch.add(rows[r - t], rows[r + t], out=pair[0]), alpha=column[t])


def _columns_at(sites: _Sites, rows: torch.Tensor, corners: torch.Tensor, taps: torch.Tensor,
                out: torch.Tensor) -> None:
    """Column pass at chosen pixels from the flat row passes ``rows`` (:meth:`_Sites.row_passes`) into ``out``
    (C, n): ``corners`` each pixel's in its filter's row pass, shifted by ``-r * Wp``; ``taps`` (r + 1, 1, n)."""
    r = taps.shape[0] - 1
    wp = sites.grid[2]
    values = sites.gather(rows, corners, [(dy, 0) for dy in range(-r, r + 1)], -r * wp)  # (k, C, n)
    torch.mul(values[r], taps[0], out=out)
    pair = sites.take(out.shape)
    for t in range(1, r + 1):
        out.addcmul_(torch.add(values[r - t], values[r + t], out=pair), taps[t])
