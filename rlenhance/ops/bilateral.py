"""The bilateral filter, as the float path of OpenCV's ``cv2.bilateralFilter`` (reflect-101 border).

The colour weight of a pixel pair is computed once per pair of opposite offsets, for several colour sigmas
at once, and accumulated in OpenCV's offset order. OpenCV's interpolated lookup table is evaluated in closed
form, or replaced by the exact Gaussian where its error is negligible; those rules and the support are shared
with :func:`_bilateral_at` and the native kernel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from rlenhance.ops._checks import _check_batch, _check_bilateral_params
from rlenhance.ops._padding import _REFLECT_101, _pad2d
from rlenhance.ops._sites import _Sites
from rlenhance.ops._workspace import _carve, _pieces, _work_dtype
from rlenhance.runtime import constant_tensor

__all__ = ["bilateral_filter2d"]

#: OpenCV's lookup table deviates from the exact Gaussian by at most ``(bin_width / sigma_color)**2 / 8``; up
#: to this bound the exact Gaussian is used instead (outputs differ by < 1e-6).
_BILATERAL_EXACT_GAUSSIAN_MAX_ERROR = 2.5e-6


def _bilateral_into(x: torch.Tensor, xp: torch.Tensor, pad: int, d: int, sigma_colors: Sequence[float],
                    sigma_space: float, lut_bins_per_channel: int, outs: Sequence[torch.Tensor]) -> None:
    """:func:`bilateral_filter2d` of ``x`` (float32 / float64, ``xp`` it reflect-101 padded by ``pad`` >= the
    radius) for several colour sigmas, one (B, C, H, W) target of ``outs`` each."""
    dtype, device = x.dtype, x.device
    b, c, h, w = x.shape
    radius = max(d // 2, 1)

    ranges = _value_ranges(x)  # per image (OpenCV: len = (float)(max - min) * cn); a host sync
    exact = [_bilateral_exact(max(ranges), s, lut_bins_per_channel) for s in sigma_colors]
    order = sorted(range(len(outs)), key=lambda f: not exact[f])  # exact-Gaussian filters first
    sigma_colors, outs, exact = [sigma_colors[f] for f in order], [outs[f] for f in order], [exact[f] for f in order]
    n_out, n_exact = len(outs), sum(exact)
    coeffs = [_colour_coeff(s) for s in sigma_colors]
    if n_exact:
        exact_coeffs = constant_tensor(tuple(coeffs[:n_exact]), dtype, torch.device(device)).view(-1, 1, 1, 1, 1)
    if n_exact < n_out:  # per-image table constants, computed on the host (MPS has no float64)
        length = torch.tensor(ranges, dtype=torch.float64).to(dtype) * c
        scale = lut_bins_per_channel * c / length  # (B,) table bins per unit of colour distance
        # table entry i = exp(coeff * (i / scale)^2) = exp2(bin_coeff * i^2), per image
        bin_coeffs = [(coeff / scale.double() ** 2).to(device, dtype).view(1, b, 1, 1, 1) for coeff in coeffs]
        scale = scale.to(device).view(b, 1, 1, 1)

    # offset -o reuses the weight map of +o: |I(p + o) - I(p)| is also the distance of q = p + o to q - o
    space_coeff = -0.5 / (sigma_space * sigma_space)
    disc = _disc(radius)
    half = [(dy, dx) for dy, dx in disc if dy > 0 or (dy == 0 and dx > 0)]
    per_row = (len(half) * n_out + c + 6) * (w + radius) + (n_out + 1) * (c + 1) * (w + 2 * pad)
    for b0, b1, y0, y1 in _pieces(b, h, per_row, dtype):
        bp, hb = b1 - b0, y1 - y0
        piece = xp[b0:b1, :, y0: y1 + 2 * pad]
        ext = (hb + radius) * (w + radius)  # a weight map covers band ∪ (band - o): (hb + |dy|) x (w + |dx|)
        bufs = _carve(x, [(n_out * bp * ext,)] * len(half)  # weight maps, (n_out, B, 1, ny, nx) each
                      + [(bp * c * ext,), (bp * ext,), (bp * ext,), (2 * bp * ext,), (2 * bp * ext,)]
                      + [(n_out, bp, c + 1, hb, w), (bp, c + 1) + piece.shape[-2:]])
        # [sum(w * I) | sum(w)] per colour sigma, accumulated with the padded image plus a channel of ones
        acc, xp1 = bufs[-2], bufs[-1]
        xp1[:, :c].copy_(piece)
        xp1[:, c:].fill_(1.0)
        maps: dict[tuple[int, int], tuple[torch.Tensor, int, int]] = {}  # (dy, dx) -> (maps, qy, qx)
        for (dy, dx), map_buf in zip(half, bufs):
            # map element (iy, ix) belongs to pixel q = (qy + iy, qx + ix) of band ∪ (band - o)
            qy, qx = -dy, min(0, -dx)
            ny, nx = hb + dy, w + abs(dx)
            size = bp * ny * nx
            weight = map_buf[: n_out * size].view(n_out, bp, 1, ny, nx)
            diff = bufs[len(half)][: c * size].view(bp, c, ny, nx)
            here = piece[:, :, pad + qy: pad + qy + ny, pad + qx: pad + qx + nx]
            there = piece[:, :, pad + qy + dy: pad + qy + dy + ny, pad + qx + dx: pad + qx + dx + nx]
            torch.sub(there, here, out=diff)
            if c > 1 or n_exact < n_out:
                diff.abs_()
            if c > 1:  # L1 colour distance, as OpenCV
                dist = bufs[len(half) + 1][:size].view(bp, 1, ny, nx)
                torch.sum(diff, dim=1, keepdim=True, out=dist)
            else:
                dist = diff
            squares = bufs[len(half) + 3][: 2 * size].view(2, bp, 1, ny, nx)
            if n_exact:
                torch.square(dist, out=squares[0])
                torch.mul(squares[0], exact_coeffs, out=weight[:n_exact]).exp2_()
            if n_exact < n_out:
                # OpenCV: pos = dist * scale, i = floor(pos), weight = lut[i] + (pos - i) * (lut[i+1] - lut[i])
                frac = bufs[len(half) + 2][:size].view(bp, 1, ny, nx)
                args = bufs[len(half) + 4][: 2 * size].view(2, bp, 1, ny, nx)
                torch.mul(dist, scale[b0:b1], out=frac)
                torch.floor(frac, out=squares[0])
                torch.add(squares[0], 1.0, out=squares[1])
                frac.sub_(squares[0])
                squares.square_()  # i^2, (i + 1)^2
                for f in range(n_exact, n_out):
                    torch.mul(squares, bin_coeffs[f][:, b0:b1], out=args).exp2_()  # lut[i], lut[i + 1]
                    torch.lerp(args[0], args[1], frac, out=weight[f])
            maps[dy, dx] = (weight, qy, qx)

        # accumulate in OpenCV's order (raster order over the disc, from zero), all colour sigmas at once
        acc.zero_()
        for dy, dx in disc:
            neighbour = xp1[:, :, pad + dy: pad + dy + hb, pad + dx: pad + dx + w]
            if dy == 0 and dx == 0:
                acc.add_(neighbour)  # colour and space weight 1
                continue
            if (dy, dx) in maps:  # weight of +o at pixel p: map(p)
                weight, qy, qx = maps[dy, dx]
                wy, wx = -qy, -qx
            else:  # weight of -o at pixel p: map of +o at p - o
                weight, qy, qx = maps[-dy, -dx]
                wy, wx = dy - qy, dx - qx
            space_weight = math.exp((dy * dy + dx * dx) * space_coeff)
            acc.addcmul_(weight[:, :, :, wy: wy + hb, wx: wx + w], neighbour, value=space_weight)
        for f, out in enumerate(outs):
            torch.div(acc[f, :, :c], acc[f, :, c:], out=out[b0:b1, :, y0:y1])


def bilateral_filter2d(x: torch.Tensor, d: int = 5, sigma_color: float = 0.1, sigma_space: float = 5.0,
                       *, lut_bins_per_channel: int = 4096) -> torch.Tensor:
    """Bilateral filter matching ``cv2.bilateralFilter(x, d, sigma_color, sigma_space)`` on float images.

    OpenCV's float path per image: a disc of radius ``max(d // 2, 1)``, the L1 colour distance over channels,
    the colour weight from OpenCV's interpolated lookup table over the image's value range (or the exact
    Gaussian where the table's error is negligible), reflect-101 borders. ``sigma_color`` is on the intensity
    scale of ``x``. Not meant to be differentiated; reads the value range back to the host (a GPU sync).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        d: Diameter of the pixel neighbourhood (> 0); the radius is ``max(d // 2, 1)``.
        sigma_color: Colour sigma in intensity units, > 0.
        sigma_space: Spatial sigma in pixels, > 0.
        lut_bins_per_channel: Lookup-table resolution (OpenCV uses 4096).

    Returns:
        Filtered batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``d``, ``sigma_color``, ``sigma_space`` or ``lut_bins_per_channel`` is not positive.
    """
    _check_batch(x)
    _check_bilateral_params(d, sigma_color, sigma_space, lut_bins_per_channel)
    work = _work_dtype(x)
    radius = max(d // 2, 1)
    out = torch.empty_like(work, memory_format=torch.contiguous_format)
    _bilateral_into(work, _pad2d(work, radius, _REFLECT_101), radius, d, (sigma_color,), sigma_space,
                    lut_bins_per_channel, [out])
    return out.to(x.dtype)


# ----------------------------------------------------------------------------- rules shared with the native kernel


@functools.lru_cache(maxsize=16)
def _disc(radius: int) -> tuple[tuple[int, int], ...]:
    """OpenCV's bilateral support: offsets (dy, dx) within Euclidean distance ``radius``, raster order."""
    return tuple((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                 if not math.sqrt(dy * dy + dx * dx) > radius)


def _value_ranges(x: torch.Tensor) -> list[float]:
    """Per-image value range as :func:`_bilateral_into` takes it (a flat image counts as 1); a host sync."""
    lows_highs = torch.stack(torch.aminmax(x.reshape(x.shape[0], -1), dim=1), 1).tolist()  # one host sync
    ranges = [hi - lo for lo, hi in lows_highs]  # doubles
    return [1.0 if abs(r) < torch.finfo(torch.float32).eps else r for r in ranges]


def _bilateral_exact(max_range: float, sigma_color: float, lut_bins_per_channel: int) -> bool:
    """Whether the exact Gaussian replaces the table for this colour sigma, given the largest per-image range."""
    return (max_range / lut_bins_per_channel / sigma_color) ** 2 / 8 <= _BILATERAL_EXACT_GAUSSIAN_MAX_ERROR


def _colour_coeff(sigma_color: float) -> float:
    """The bilateral colour weight is ``exp2(coeff * dist^2)``."""
    return -0.5 / (sigma_color * sigma_color) / math.log(2.0)


# ----------------------------------------------------------------------------- at chosen pixels


def _bilateral_at(sites: _Sites, q: torch.Tensor, coeffs: torch.Tensor, d: int, sigma_space: float,
                  lut_bins_per_channel: int, ranges: Sequence[float] | None, out: torch.Tensor) -> None:
    """:func:`bilateral_filter2d` at pixels ``q`` into ``out`` (C, n), ``coeffs`` (n,) each pixel's
    :func:`_colour_coeff`; ``ranges``: None for the exact Gaussian, else the value ranges for OpenCV's table."""
    c, n = sites.shape[1], q.numel()
    disc = _disc(max(d // 2, 1))
    first = min(dy * sites.grid[2] + dx for dy, dx in disc)
    values = sites.gather(sites.padded(_REFLECT_101).view(-1), sites.corners(q, first), disc, first)  # (T, C, n)
    taps = len(disc)
    centre = disc.index((0, 0))
    diff = torch.sub(values, values[centre], out=sites.take(values.shape))
    if c > 1 or ranges is not None:
        diff.abs_()
    dist = torch.sum(diff, dim=1, keepdim=True, out=sites.take((taps, 1, n))) if c > 1 else diff  # L1, (T, 1, n)
    space_coeff = -0.5 / (sigma_space * sigma_space)
    space = [math.exp((dy * dy + dx * dx) * space_coeff) for dy, dx in disc]
    if ranges is None:  # weight = space * exp2(coeff * dist^2) = exp2(coeff * dist^2 + log2(space))
        log_space = torch.tensor([math.log2(v) for v in space], dtype=values.dtype).view(-1, 1, 1).to(values.device)
        weight = torch.addcmul(log_space, dist.square_(), coeffs, out=dist).exp2_()
    else:  # OpenCV's table: pos = dist * scale, i = floor(pos), lut[i] + (pos - i) * (lut[i + 1] - lut[i])
        dtype, device = values.dtype, values.device
        length = torch.tensor(ranges, dtype=torch.float64).to(dtype) * c
        scale = lut_bins_per_channel * c / length  # (B,) table bins per unit of colour distance
        images = sites.images(q)
        # lut[i] = exp2(coeff / scale^2 * i^2), per pixel
        per_pixel = coeffs * (1.0 / scale.double() ** 2).to(device, dtype).index_select(0, images)
        pos = dist.mul_(scale.to(device).index_select(0, images))
        low = torch.floor(pos)
        frac = pos.sub_(low)
        high = low + 1.0
        weight = torch.lerp(low.square_().mul_(per_pixel).exp2_(), high.square_().mul_(per_pixel).exp2_(), frac)
        weight.mul_(torch.tensor(space, dtype=dtype).view(-1, 1, 1).to(device))
    # sum(w * I) / sum(w), summed over the taps in OpenCV's (raster) order (the centre's weight is 1)
    numerator = torch.sum(torch.mul(weight, values, out=values), dim=0, out=out)
    numerator.div_(torch.sum(weight, dim=0, out=sites.take((1, n))))
