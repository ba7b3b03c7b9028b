"""PixelRL's per-pixel filter bank as batched, device-agnostic torch ops.

Every filter takes a float image batch of shape (B, C, H, W) (float32 in [0, 1] in practice) on
any device and returns the same shape and dtype. The filters reproduce OpenCV on the same float32
input, border handling included, so that an agent trained on these ops sees what PixelRL's
``cv2`` loop produced:

==========================  ===================================  ===========
function                    OpenCV reference                     border
==========================  ===================================  ===========
:func:`gaussian_blur2d`     ``cv2.GaussianBlur(x, (k, k), s)``   reflect-101
:func:`box_blur2d`          ``cv2.blur`` / ``cv2.boxFilter``     reflect-101
:func:`median_blur2d`       ``cv2.medianBlur(x, k)``             replicate
:func:`bilateral_filter2d`  ``cv2.bilateralFilter``              reflect-101
==========================  ===================================  ===========

(reflect-101 is OpenCV's ``BORDER_DEFAULT``: ``gfedcb|abcdefgh|gfedcba``; replicate is
``aaaaaa|abcdefgh|hhhhhhh``.) Images of any size, down to 1x1, are padded as OpenCV pads them.

:data:`PIXELRL_ACTION_TABLE` lists PixelRL's nine actions with their parameters (the only
place they are written); :func:`pixelrl_filter_bank` / :class:`FilterBank` apply all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.errors import ImageError

__all__ = [
    "PIXELRL_ACTIONS",
    "PIXELRL_ACTION_TABLE",
    "FilterAction",
    "FilterBank",
    "bilateral_filter2d",
    "box_blur2d",
    "gaussian_blur2d",
    "gaussian_kernel1d",
    "median_blur2d",
    "pixelrl_filter_bank",
    "shift_intensity",
]

_REFLECT_101 = "reflect101"
_REPLICATE = "replicate"


# ----------------------------------------------------------------------------- helpers


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}")
    if x.ndim != 4:
        raise ImageError(f"{name} must have shape (B, C, H, W); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name} must be a floating-point tensor (float32 in [0, 1]); got dtype {x.dtype}")
    if min(x.shape) == 0:
        raise ImageError(f"{name} must be non-empty; got shape {tuple(x.shape)}")


def _check_ksize(ksize: int, name: str = "ksize") -> None:
    if isinstance(ksize, bool) or not isinstance(ksize, int) or ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int (1, 3, 5, ...); got {ksize!r}")


def _check_positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")


def _work_dtype(x: torch.Tensor) -> torch.Tensor:
    """float32/float64 stay as they are; half types are computed in float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _border_index(n: int, pad: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source indices, shape (n + 2 * pad,), of a padded axis, as OpenCV's ``borderInterpolate``."""
    idx = torch.arange(-pad, n + pad, device=device)
    if mode == _REPLICATE:
        return idx.clamp(0, n - 1)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def _pad2d(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Pad the last two dims by ``pad`` on every side with OpenCV border semantics, any image size."""
    if pad == 0:
        return x
    h, w = x.shape[-2:]
    if mode == _REFLECT_101 and pad < min(h, w):
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    if mode == _REPLICATE:
        return F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = x.index_select(-2, _border_index(h, pad, mode, x.device))
    return x.index_select(-1, _border_index(w, pad, mode, x.device))


def _separable(x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Reflect-101 padded separable filtering of (B, C, H, W) with a 1-D kernel (rows, then columns)."""
    b, c, h, w = x.shape
    k = kernel.numel()
    xp = _pad2d(x.reshape(b * c, 1, h, w), k // 2, _REFLECT_101)
    out = F.conv2d(xp, kernel.view(1, 1, 1, k))
    out = F.conv2d(out, kernel.view(1, 1, k, 1))
    if scale != 1.0:
        out = out * scale
    return out.reshape(b, c, h, w)


# ----------------------------------------------------------------------------- filters


def gaussian_kernel1d(ksize: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel as ``cv2.getGaussianKernel(ksize, sigma)`` (sigma > 0).

    Args:
        ksize: Odd positive kernel length.
        sigma: Standard deviation in pixels, > 0.
        dtype: Output dtype (weights are computed in float64 first).
        device: Output device.

    Returns:
        Tensor of shape (ksize,), summing to 1.
    """
    _check_ksize(ksize)
    _check_positive(sigma, "sigma")
    pos = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2  # on CPU: float64 everywhere
    weights = torch.exp(pos * pos * (-0.5 / (sigma * sigma)))
    return (weights / weights.sum()).to(device=device, dtype=dtype)


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
    _check_ksize(ksize)
    _check_positive(sigma, "sigma")
    work = _work_dtype(x)
    kernel = gaussian_kernel1d(ksize, sigma, dtype=work.dtype, device=x.device)
    return _separable(work, kernel).to(x.dtype)


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
    _check_ksize(ksize)
    work = _work_dtype(x)
    ones = torch.ones(ksize, dtype=work.dtype, device=x.device)
    return _separable(work, ones, scale=1.0 / (ksize * ksize)).to(x.dtype)


def _windows(xp: torch.Tensor, ksize: int) -> torch.Tensor:
    """All ksize x ksize windows of a padded (B, C, H+2r, W+2r) tensor as (B, C, H, W, ksize*ksize)."""
    b, c = xp.shape[:2]
    patches = xp.unfold(2, ksize, 1).unfold(3, ksize, 1)  # (B, C, H, W, k, k), a view
    return patches.reshape(b, c, patches.shape[2], patches.shape[3], ksize * ksize)


def median_blur2d(x: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Median filter matching ``cv2.medianBlur(x, ksize)`` (replicated border), channel by channel.

    OpenCV accepts float32 input only for ``ksize`` 3 and 5; this op takes any odd ``ksize``.
    Memory is ``ksize**2`` times the input.

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
    _check_ksize(ksize)
    if ksize == 1:
        return x.clone()
    xp = _pad2d(x, ksize // 2, _REPLICATE)
    return _windows(xp, ksize).median(dim=-1).values


def bilateral_filter2d(x: torch.Tensor, d: int = 5, sigma_color: float = 0.1, sigma_space: float = 5.0,
                       *, lut_bins_per_channel: int = 4096) -> torch.Tensor:
    """Bilateral filter matching ``cv2.bilateralFilter(x, d, sigma_color, sigma_space)`` on float images.

    OpenCV's float path, reproduced here per image of the batch:

    * spatial support: the pixels within Euclidean distance ``r = max(d // 2, 1)`` of the centre
      (a disc, e.g. 13 pixels for ``d = 5``), weight ``exp(-dist^2 / (2 sigma_space^2))``;
    * colour distance: ``|I(q) - I(p)|`` for one channel, the SUM of absolute channel differences
      for several channels (not the Euclidean norm);
    * colour weight: ``exp(-dist^2 / (2 sigma_color^2))`` read from a lookup table of
      ``lut_bins_per_channel * C`` bins spanning ``[0, C * (max - min)]``, where max/min are taken
      over the whole image (all channels), with linear interpolation between bins;
    * borders are reflect-101; a constant image stays constant (up to float rounding).

    ``sigma_color`` is on the intensity scale of ``x`` ([0, 1] for our images; PixelRL calls
    ``cv2.bilateralFilter`` on [0, 1] floats with 0.1 and 1.0). OpenCV only accepts C = 1 or 3;
    other C follow the same rule. Not meant to be differentiated (the table index is floored).

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
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive int (neighbourhood diameter); got {d!r}")
    _check_positive(sigma_color, "sigma_color")
    _check_positive(sigma_space, "sigma_space")
    if isinstance(lut_bins_per_channel, bool) or not isinstance(lut_bins_per_channel, int) \
            or lut_bins_per_channel < 1:
        raise ValueError(f"lut_bins_per_channel must be a positive int; got {lut_bins_per_channel!r}")

    work = _work_dtype(x)
    dtype, device = work.dtype, work.device
    b, c, h, w = work.shape
    radius = max(d // 2, 1)
    precise = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64

    # Per-image value range -> lookup-table scale (OpenCV: len = (float)(max - min) * cn).
    flat = work.reshape(b, -1)
    value_range = flat.amax(dim=1).to(precise) - flat.amin(dim=1).to(precise)
    # (Near-)constant image: any finite scale gives colour weights of ~1, i.e. a spatial average.
    constant = value_range.abs() < torch.finfo(torch.float32).eps
    length = torch.where(constant, torch.ones_like(value_range), value_range).to(dtype) * c
    n_bins = lut_bins_per_channel * c
    scale = n_bins / length  # (B,), bins per unit of colour distance

    # Colour-weight table, (B, n_bins + 2): exp(-(i / scale)^2 / (2 sigma_color^2)).
    bins = torch.arange(n_bins + 2, dtype=dtype, device=device)
    dist_of_bin = (bins[None, :] / scale[:, None]).to(precise)
    lut = torch.exp(dist_of_bin * dist_of_bin * (-0.5 / (sigma_color * sigma_color))).to(dtype)

    xp = _pad2d(work, radius, _REFLECT_101)
    num = torch.zeros_like(work)
    den = torch.zeros((b, 1, h, w), dtype=dtype, device=device)
    scale4 = scale.view(b, 1, 1, 1)
    space_coeff = -0.5 / (sigma_space * sigma_space)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            r2 = dy * dy + dx * dx
            if math.sqrt(r2) > radius:
                continue
            space_weight = math.exp(r2 * space_coeff)
            nbr = xp[:, :, radius + dy: radius + dy + h, radius + dx: radius + dx + w]
            dist = (nbr - work).abs()
            if c > 1:
                dist = dist.sum(dim=1, keepdim=True)
            pos = dist * scale4
            idx = pos.floor()
            frac = (pos - idx).reshape(b, -1)
            idx = idx.long().clamp_(0, n_bins).reshape(b, -1)
            lo = lut.gather(1, idx)
            hi = lut.gather(1, idx + 1)
            weight = (space_weight * (lo + frac * (hi - lo))).view(b, 1, h, w)
            num += nbr * weight
            den += weight
    return (num / den).to(x.dtype)


def shift_intensity(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Add ``delta`` to every value, WITHOUT clipping (PixelRL's +-1/255 actions).

    PixelRL does not clip after its +-1/255 moves, so values may leave [0, 1] slightly; clip
    where your pipeline needs it.

    Args:
        x: Image batch, float tensor of shape (B, C, H, W).
        delta: Value added.

    Returns:
        ``x + delta``, same shape and dtype.
    """
    _check_batch(x)
    return x + delta


def _identity(x: torch.Tensor) -> torch.Tensor:
    _check_batch(x)
    return x


# ----------------------------------------------------------------------------- PixelRL bank


@dataclass(frozen=True)
class FilterAction:
    """One action of a per-pixel filter bank: a short name, an op and its keyword arguments.

    Attributes:
        name: Short name, e.g. ``"gaussian_0.5"``.
        op: Function ``op(x, **params)`` on (B, C, H, W) tensors.
        params: Keyword arguments of ``op`` as ``((name, value), ...)`` (immutable).
    """

    name: str
    op: Callable[..., torch.Tensor]
    params: tuple[tuple[str, float], ...] = ()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, **dict(self.params))


def _params(**kwargs: float) -> tuple[tuple[str, float], ...]:
    return tuple(kwargs.items())


#: PixelRL's nine actions, in PixelRL's order, with their parameters (Furuta et al., 2019).
#: The +-1/255 moves are not clipped, as in PixelRL.
PIXELRL_ACTION_TABLE: tuple[FilterAction, ...] = (
    FilterAction("pixel_minus", shift_intensity, _params(delta=-1.0 / 255.0)),
    FilterAction("keep", _identity),
    FilterAction("pixel_plus", shift_intensity, _params(delta=1.0 / 255.0)),
    FilterAction("gaussian_0.5", gaussian_blur2d, _params(ksize=5, sigma=0.5)),
    FilterAction("bilateral_0.1", bilateral_filter2d, _params(d=5, sigma_color=0.1, sigma_space=5.0)),
    FilterAction("median", median_blur2d, _params(ksize=5)),
    FilterAction("gaussian_1.5", gaussian_blur2d, _params(ksize=5, sigma=1.5)),
    FilterAction("bilateral_1.0", bilateral_filter2d, _params(d=5, sigma_color=1.0, sigma_space=5.0)),
    FilterAction("box", box_blur2d, _params(ksize=5)),
)

#: Short names of PixelRL's nine actions, index = action id.
PIXELRL_ACTIONS: tuple[str, ...] = tuple(action.name for action in PIXELRL_ACTION_TABLE)


def pixelrl_filter_bank(x: torch.Tensor,
                        actions: Sequence[FilterAction] = PIXELRL_ACTION_TABLE) -> torch.Tensor:
    """Apply every action of a filter bank to a batch (PixelRL's candidates for per-pixel selection).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], C = 1 or 3.
        actions: The bank, by default :data:`PIXELRL_ACTION_TABLE` (9 actions).

    Returns:
        Candidates of shape (B, K, C, H, W), K = ``len(actions)``; candidate ``k`` is action ``k``
        applied to ``x``. Feed it to :func:`rlenhance.ops.select_per_pixel`.

    Example:
        >>> cands = pixelrl_filter_bank(torch.rand(2, 1, 16, 16))
        >>> cands.shape
        torch.Size([2, 9, 1, 16, 16])
    """
    _check_batch(x)
    return torch.stack([action(x) for action in actions], dim=1)


class FilterBank(nn.Module):
    """Module form of :func:`pixelrl_filter_bank` (no parameters).

    Args:
        actions: The bank, by default :data:`PIXELRL_ACTION_TABLE`.

    Attributes:
        names: Action names, index = action id.
        n_actions: Number of actions K.
    """

    def __init__(self, actions: Sequence[FilterAction] = PIXELRL_ACTION_TABLE) -> None:
        super().__init__()
        self.actions = tuple(actions)
        if not self.actions:
            raise ValueError("actions must hold at least one FilterAction; got an empty sequence")
        self.names = tuple(action.name for action in self.actions)
        self.n_actions = len(self.actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> candidates (B, K, C, H, W)."""
        return pixelrl_filter_bank(x, self.actions)

    def extra_repr(self) -> str:
        return f"names={self.names}"
