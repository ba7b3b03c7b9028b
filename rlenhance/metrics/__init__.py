"""Image quality metrics, one value per image.

Full-reference metrics (torch, differentiable): :func:`psnr`, :func:`ssim`, :func:`uqi`, with :func:`rgb_to_y`
(scores on Y) and :func:`gt_mean_align` (the "GT-mean" protocol). They take two float tensors of the same shape
``(B, C, H, W)`` (``(C, H, W)``: a batch of one) on any device and return one value per image, shape ``(B,)``,
never pooling pixels across the batch (average the values for a dataset figure, as torchmetrics does).

No-reference metrics (:mod:`rlenhance.metrics.no_reference`, numpy / scipy, imported on first use):
:func:`niqe`, :func:`loe`, :func:`clipped_fraction`, :func:`dark_colour_noise`. Scores inside a hole:
:mod:`rlenhance.metrics.hole`; every metric with its label and direction: :mod:`rlenhance.metrics.table`.

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 32, 32)
    >>> psnr(x, x.clamp(0.1, 0.9), data_range=1.0).shape
    torch.Size([2])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rlenhance.errors import ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS
from rlenhance.io.arrays import finite_extremes

__all__ = ["clipped_fraction", "dark_colour_noise", "gt_mean_align", "loe", "niqe", "psnr", "rgb_to_y", "ssim", "uqi"]

_NO_REFERENCE = ("clipped_fraction", "dark_colour_noise", "loe", "niqe")


def __getattr__(name: str) -> object:
    if name in _NO_REFERENCE:
        from rlenhance.metrics import no_reference  # noqa: PLC0415 - scipy, on first use

        return getattr(no_reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Y' of BT.601 YCbCr spans 219 of 255 levels (16-235, "studio swing").
_Y_SPAN = 219.0 / 255.0
_Y_OFFSET = 16.0 / 255.0


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` as a floating-point ``(B, C, H, W)`` tensor (``(C, H, W)`` gains B=1); ImageError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ImageError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}; "
                         "convert images to float32 in [0, 1] first")
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() != 4:
        raise ImageError(f"{name}: expected shape (B, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return x


def _as_batch_pair(x: torch.Tensor, y: torch.Tensor, name_x: str = "x",
                   name_y: str = "y") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_as_batch` of two images, raising ImageError when their shapes differ."""
    xb = _as_batch(x, name_x)
    yb = _as_batch(y, name_y)
    if xb.shape != yb.shape:
        raise ImageError(f"{name_x} and {name_y} must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return xb, yb


def _scored_pair(x: torch.Tensor, y: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_as_batch_pair` refusing empty images and NaN or infinite values (ImageError naming ``metric``)."""
    x, y = _as_batch_pair(x, y, f"{metric}: x", f"{metric}: y")
    for image, name in ((x, "x"), (y, "y")):
        finite_extremes(image, name=f"{metric}: {name}", accepted="finite float values")
    return x, y


def _check_positive(value: float, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_size(value: int, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a positive int."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_window(win_size: int, height: int, width: int, *, odd: bool) -> None:
    """ValueError unless ``win_size`` is a positive int (odd when ``odd``); ImageError when the image is smaller."""
    _check_size(win_size, "win_size")
    if odd and win_size % 2 == 0:
        raise ValueError(f"win_size must be odd, got {win_size}")
    if height < win_size or width < win_size:
        raise ImageError(f"image of size {height}x{width} is smaller than the {win_size}x{win_size} window; "
                         f"images must be at least win_size pixels high and wide")


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, mse_floor: float = 0.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB: ``10 log10(data_range^2 / MSE)``, as skimage's.

    Args:
        x: Reference image(s), float, shape (B, C, H, W) or (C, H, W).
        y: Test image(s), same shape and dtype family as ``x``.
        data_range: Distance between the minimum and maximum possible pixel values (1.0 for [0, 1]), > 0.
        mse_floor: the MSE is taken as at least this (>= 0), so that identical images give a finite value.

    Returns:
        Float tensor of shape (B,). With ``mse_floor=0`` identical images give ``+inf``.

    Raises:
        ImageError: when the inputs are not float tensors of the same 3-D / 4-D shape, are empty,
            or hold NaN or infinite values.
        ValueError: when ``data_range`` is not > 0.
    """
    x, y = _scored_pair(x, y, "psnr")
    _check_positive(data_range, "data_range")
    if not mse_floor >= 0:
        raise ValueError(f"mse_floor: expected a number >= 0, got {mse_floor!r}")
    mse = (x - y).pow(2).mean(dim=(1, 2, 3)).clamp_min(mse_floor)
    return 10.0 * torch.log10(data_range**2 / mse)


def _luma(x: torch.Tensor, name: str) -> torch.Tensor:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of a (B, 3, H, W) batch, shape (B, 1, H, W)."""
    if x.shape[1] != 3:
        raise ImageError(f"{name}: expected 3 (RGB) channels, got {x.shape[1]} in shape {tuple(x.shape)}")
    weights = torch.tensor(BT601_LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def rgb_to_y(x: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """The Y channel of BT.601 YCbCr (MATLAB's ``rgb2ycbcr``, studio swing), for PSNR / SSIM "on Y".

    ``Y = (16 + 219 (0.299 R + 0.587 G + 0.114 B) / data_range) * data_range / 255``; compose it with a metric:
    ``psnr(rgb_to_y(x), rgb_to_y(y))``.

    Args:
        x: RGB image(s), float, shape (B, 3, H, W) or (3, H, W), values in [0, ``data_range``].
        data_range: the value of white (1.0 for images in [0, 1], 255.0 for the 0-255 scale). Must be > 0.

    Returns:
        Float tensor of shape (B, 1, H, W), values in ``[16, 235] * data_range / 255``.

    Raises:
        ImageError: ``x`` is not a float tensor of 3 channels, shape (B, 3, H, W) or (3, H, W).
        ValueError: ``data_range`` is not > 0.

    Example:
        >>> white = torch.ones(1, 3, 2, 2)
        >>> round(float(rgb_to_y(white, data_range=1.0)[0, 0, 0, 0]) * 255, 3)
        235.0
    """
    x = _as_batch(x, "x")
    _check_positive(data_range, "data_range")
    return _luma(x, "rgb_to_y: x") * _Y_SPAN + _Y_OFFSET * data_range


def gt_mean_align(x: torch.Tensor, reference: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Scale each output so that its mean gray level equals its reference's ("GT-mean" evaluation, LLFlow / KinD).

    ``x * mean(gray(reference)) / mean(gray(x))`` per image, clipped to ``[0, data_range]``, ``gray`` the BT.601
    luma (a one-channel image is its own gray); a black image is returned as it is.

    Args:
        x: Output image(s), float, shape (B, C, H, W) or (C, H, W) with C = 1 or 3, values in [0, ``data_range``].
        reference: Ground-truth image(s), same shape as ``x``.
        data_range: the value of white, the upper clip (1.0 for images in [0, 1]). Must be > 0.

    Returns:
        The aligned outputs, same dtype as ``x``, shape (B, C, H, W).

    Raises:
        ImageError: the inputs are not float tensors of the same 3-D / 4-D shape with 1 or 3 channels.
        ValueError: ``data_range`` is not > 0.

    Example:
        >>> reference = torch.full((1, 3, 4, 4), 0.5)
        >>> gt_mean_align(reference / 4, reference).allclose(reference)
        True
    """
    x, reference = _as_batch_pair(x, reference, "x", "reference")
    _check_positive(data_range, "data_range")
    if x.shape[1] not in (1, 3):
        raise ImageError(f"gt_mean_align: expected 1 or 3 channels, got {x.shape[1]} in shape {tuple(x.shape)}")

    def mean_gray(t: torch.Tensor) -> torch.Tensor:
        gray = t if t.shape[1] == 1 else _luma(t, "gt_mean_align")
        return gray.mean(dim=(1, 2, 3), keepdim=True)

    own = mean_gray(x)
    factor = torch.where(own != 0, mean_gray(reference) / torch.where(own != 0, own, 1.0), 1.0)
    return (x * factor).clamp(0.0, data_range)


def _gaussian_kernel1d(win_size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised Gaussian taps ``exp(-k^2 / (2 sigma^2))``, ``k = -r..r``, ``r = win_size//2``."""
    radius = win_size // 2
    k = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (k / sigma) ** 2)
    return taps / taps.sum()


def _symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two dims by ``pad``, half-sample symmetric (``d c b a | a b c d``, scipy's ``'reflect'``)."""

    def index(n: int) -> torch.Tensor:
        i = torch.arange(-pad, n + pad, device=x.device)
        i = torch.where(i < 0, -i - 1, i)
        return torch.where(i >= n, 2 * n - i - 1, i)

    height, width = x.shape[-2:]
    return x.index_select(-2, index(height)).index_select(-1, index(width))


def _gaussian_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of every channel of ``x`` (B, N, H, W), same-size output."""
    channels = x.shape[1]
    pad = taps.numel() // 2
    x = _symmetric_pad(x, pad)
    kernel_v = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    kernel_h = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    x = F.conv2d(x, kernel_v, groups=channels)
    return F.conv2d(x, kernel_h, groups=channels)


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03,
         return_map: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Structural similarity (Wang et al. 2004) per image with a Gaussian window.

    Matches ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=sigma,
    use_sample_covariance=False, data_range=data_range, channel_axis=...)``: the per-channel SSIM map of
    Gaussian-weighted statistics, averaged over channels and over the pixels at least ``(win_size - 1) // 2``
    from the border (skimage's own window size, ``2 * int(3.5 * sigma + 0.5) + 1``, is 11 for sigma 1.5). With
    the defaults it is also PIQ's ``piq.ssim`` (which, before 0.8, first downsampled images above 384 pixels).

    Args:
        x: Reference image(s), float, shape (B, C, H, W) or (C, H, W); H and W >= ``win_size``.
        y: Test image(s), same shape as ``x``.
        data_range: Distance between the minimum and maximum possible pixel values. Must be > 0.
        win_size: Odd number of Gaussian taps per axis; also sets the border crop.
        sigma: Standard deviation of the Gaussian window, in pixels. Must be > 0.
        k1: Luminance stabilising constant.
        k2: Contrast/structure stabilising constant.
        return_map: Also return the per-pixel SSIM map.

    Returns:
        ``values`` of shape (B,), SSIM in [-1, 1] per image (1 for identical images); with ``return_map=True``,
        ``(values, ssim_map)``, ``ssim_map`` (B, 1, H, W) the channel mean at full resolution (the border strip,
        computed with symmetric extension, is skimage's ``full=True`` map), so that
        ``values == ssim_map[..., p:H-p, p:W-p].mean(dim=(1, 2, 3))`` with ``p = (win_size-1)//2``.

    Raises:
        ImageError: when the inputs are not float tensors of the same 3-D / 4-D shape, hold NaN
            or infinite values, or are smaller than ``win_size``.
        ValueError: on a non-positive ``data_range`` / ``sigma`` or an even ``win_size``.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> float(ssim(x, x)[0])
        1.0
    """
    x, y = _scored_pair(x, y, "ssim")
    _check_positive(data_range, "data_range")
    _check_positive(sigma, "sigma")
    height, width = x.shape[-2:]
    _check_window(win_size, height, width, odd=True)
    channels = x.shape[1]

    x, y = x / data_range, y / data_range
    c1, c2 = k1**2, k2**2
    taps = _gaussian_kernel1d(win_size, sigma, dtype=x.dtype, device=x.device)
    stats = _gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    ux, uy, uxx, uyy, uxy = stats.split(channels, dim=1)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    ssim_map = (numerator / denominator).mean(dim=1, keepdim=True)

    pad = (win_size - 1) // 2
    values = ssim_map[..., pad : height - pad, pad : width - pad].mean(dim=(1, 2, 3))
    if return_map:
        return values, ssim_map
    return values


def uqi(x: torch.Tensor, y: torch.Tensor, *, win_size: int = 8) -> torch.Tensor:
    """Universal image quality index (Wang & Bovik 2002) per image.

    The mean over channels and window positions fully inside the image (uniform weights, population statistics) of
    ``Q = 4 cov(x, y) mx my / ((var x + var y) (mx^2 + my^2))``. Degenerate windows follow the authors' ``img_qi.m``:
    both windows flat (exactly: max == min) gives ``2 mx my / (mx^2 + my^2)``, or 1 when both means are 0 too.

    Args:
        x: Reference image(s), float, shape (B, C, H, W) or (C, H, W); H and W >= ``win_size``.
        y: Test image(s), same shape as ``x``.
        win_size: Side of the square sliding window (the paper uses 8).

    Returns:
        Float tensor of shape (B,) with values in [-1, 1]; 1 for identical images.

    Raises:
        ImageError: when the inputs are not float tensors of the same 3-D / 4-D shape, hold NaN
            or infinite values, or are smaller than ``win_size``.
        ValueError: when ``win_size`` is not a positive int.
    """
    x, y = _scored_pair(x, y, "uqi")
    height, width = x.shape[-2:]
    _check_window(win_size, height, width, odd=False)
    channels = x.shape[1]

    def window_mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    def window_flat(t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, win_size, stride=1) == -F.max_pool2d(-t, win_size, stride=1)

    means = window_mean(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mx, my, mxx, myy, mxy = means.split(channels, dim=1)
    flat_x = window_flat(x.detach())
    flat_y = window_flat(y.detach())
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    var_x = torch.where(flat_x, zero, (mxx - mx * mx).clamp_min(0))
    var_y = torch.where(flat_y, zero, (myy - my * my).clamp_min(0))
    cov = torch.where(flat_x | flat_y, zero, mxy - mx * my)

    var_sum = var_x + var_y
    mean_sq = mx * mx + my * my
    denominator = var_sum * mean_sq
    one = torch.ones((), dtype=x.dtype, device=x.device)
    full = 4 * cov * mx * my / torch.where(denominator != 0, denominator, one)
    luminance = 2 * mx * my / torch.where(mean_sq != 0, mean_sq, one)
    q = torch.where(denominator != 0, full, torch.where((var_sum == 0) & (mean_sq != 0), luminance, one))
    return q.mean(dim=(1, 2, 3))
