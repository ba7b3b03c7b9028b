"""Image enhancement losses: Zero-DCE / ReLLIE non-reference losses and reference losses.

Every loss takes float tensors ``(B, C, H, W)`` (``(C, H, W)``: a batch of one) on any device, is differentiable, and
returns one value per image, shape ``(B,)``; lower is better. With ``return_map=True`` it returns
``(values, loss_map)``, ``loss_map`` ``(B, 1, H, W)`` at the input's resolution with, unless a docstring says otherwise,
``values == loss_map.mean(dim=(1, 2, 3))``. Patch / region losses copy each patch value to its pixels, so partial border
patches weigh by their pixel count (on multiples of the patch size: Zero-DCE's plain mean over patches). The maps serve
as reward maps for pixel-wise RL (reward = -map). Defaults are Zero-DCE's released values (Guo et al., CVPR 2020).

Example:
    >>> import torch
    >>> low = torch.rand(2, 3, 64, 64) * 0.2
    >>> values, reward_map = nonreference_loss(low * 3, low, return_map=True)
    >>> values.shape, reward_map.shape
    (torch.Size([2]), torch.Size([2, 1, 64, 64]))
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.errors import ImageError
from rlenhance.metrics import _as_batch, _as_batch_pair, _check_size, ssim
from rlenhance.runtime import constant_tensor

__all__ = ["NonReferenceLoss", "color_constancy_loss", "color_ratio_loss", "exposure_gap", "exposure_loss",
           "exposure_score", "illumination_smoothness_loss", "l1_loss", "mse_loss", "nonreference_loss",
           "spatial_consistency_loss", "ssim_loss"]

LossOutput = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _patch_means(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of each ``size x size`` patch (partial border ones too): (B, 1, H, W) -> (B, 1, ceil(H/s), ceil(W/s))."""
    return F.avg_pool2d(x, size, stride=size, ceil_mode=True, count_include_pad=False)


def _upsample_patches(values: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Copy each patch value to its ``size x size`` pixels and crop to ``height x width``."""
    full = values.repeat_interleave(size, dim=-2).repeat_interleave(size, dim=-1)
    return full[..., :height, :width]


def _finish(values_map: torch.Tensor, return_map: bool) -> LossOutput:
    """Return the per-image mean of a (B, 1, H, W) map, and the map itself when asked."""
    values = values_map.mean(dim=(1, 2, 3))
    return (values, values_map) if return_map else values


def exposure_loss(x: torch.Tensor, *, target: float = 0.6, patch_size: int = 16, over: float = 0.0,
                  return_map: bool = False) -> LossOutput:
    """Exposure control loss (Zero-DCE ``L_exp``): each ``patch_size`` patch of the channel mean scores
    :func:`exposure_score` of its mean (``(mean - target)^2``, times ``1 + over`` above the target).

    Args:
        x: Enhanced image(s), float in [0, 1], shape (B, C, H, W) or (C, H, W).
        target: Well-exposedness level E (Zero-DCE: 0.6).
        patch_size: Side of the square patches, in pixels.
        over: Extra weight of the errors above the target, >= 0 (0: Zero-DCE's symmetric loss).
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W), constant on each patch.

    Raises:
        ImageError: when ``x`` is not a float 3-D / 4-D tensor.
        ValueError: when ``patch_size`` is not a positive int, or ``over`` is not a finite number >= 0.
    """
    x = _as_batch(x, "x")
    _check_size(patch_size, "patch_size")
    height, width = x.shape[-2:]
    patch_error = exposure_score(_patch_means(x.mean(dim=1, keepdim=True), patch_size), target, over=over)
    return _finish(_upsample_patches(patch_error, patch_size, height, width), return_map)


def exposure_score(means: torch.Tensor, target: float | torch.Tensor, *, over: float = 0.0) -> torch.Tensor:
    """Score of brightness means against the exposure target: ``(mean - target)^2``, times ``1 + over``
    where the mean is above it (:func:`exposure_loss`'s per-patch score).

    Raises:
        ValueError: when ``over`` is not a finite number >= 0.
    """
    if not (math.isfinite(over) and over >= 0):
        raise ValueError(f"over: expected a finite weight >= 0 (0: symmetric), got {over!r}")
    error = means - target
    return error.pow(2) * (1.0 + over * (error > 0)) if over else error.pow(2)


def exposure_gap(x: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Signed per-pixel exposure error ``target - mean_c(x)`` (> 0: left to brighten), a conditioned
    low-light policy's input plane.

    Args:
        x: image(s), float in [0, 1], shape (B, C, H, W) or (C, H, W).
        target: exposure target E, a float or a tensor broadcastable to (B, 1, 1, 1), e.g. (B,).

    Returns:
        float tensor (B, 1, H, W) in [E - 1, E].
    """
    x = _as_batch(x, "x")
    target = torch.as_tensor(target, dtype=x.dtype, device=x.device)
    if target.dim() == 1:
        target = target.view(-1, 1, 1, 1)
    return target - x.mean(dim=1, keepdim=True)


def _safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """``sqrt(t)`` for ``t >= 0`` whose gradient at 0 is 0 instead of NaN."""
    positive = t > 0
    return torch.where(positive, torch.where(positive, t, torch.ones_like(t)).sqrt(), 0.0 * t)


def color_constancy_loss(x: torch.Tensor, *, return_map: bool = False) -> LossOutput:
    """Colour constancy loss (Zero-DCE ``L_col``, as in its released code).

    With ``m_p`` the image mean of channel ``p`` and ``D_pq = (m_p - m_q)^2``, ``k = sqrt(sum_{p<q} D_pq^2)``
    (0 for C = 1). The map, ``map(i) = sum_pq (m_p - m_q)^3 (x_p(i) - x_q(i)) / k`` (0 where k = 0), has mean
    exactly ``k``; it is negative where a pixel opposes the colour cast.

    Args:
        x: Enhanced image(s), float, shape (B, C, H, W) or (C, H, W); RGB for C = 3.
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,) >= 0, or ``(values, map)`` with ``map`` (B, 1, H, W). The gradient is finite
        everywhere (0 for a gray image).

    Raises:
        ImageError: when ``x`` is not a float 3-D / 4-D tensor.
    """
    x = _as_batch(x, "x")
    channels = x.shape[1]
    if channels < 2:
        return _finish(0.0 * x[:, :1], return_map)  # zeros that keep x in the autograd graph
    pairs = list(itertools.combinations(range(channels), 2))
    first = constant_tensor(tuple(p for p, _ in pairs), torch.long, x.device)
    second = constant_tensor(tuple(q for _, q in pairs), torch.long, x.device)
    diff = x.index_select(1, first) - x.index_select(1, second)  # (B, P, H, W)
    mean_diff = diff.mean(dim=(2, 3), keepdim=True)  # (B, P, 1, 1)
    k = _safe_sqrt(mean_diff.pow(4).sum(dim=1, keepdim=True))  # (B, 1, 1, 1)
    if not return_map:
        return k.flatten()
    k_safe = torch.where(k > 0, k, torch.ones_like(k))
    weights = torch.where(k > 0, mean_diff.pow(3) / k_safe, torch.zeros_like(mean_diff))
    return k.flatten(), (weights * diff).sum(dim=1, keepdim=True)


def color_ratio_loss(x: torch.Tensor, original: torch.Tensor, *, eps: float = 1e-3,
                     return_map: bool = False) -> LossOutput:
    """Change of each pixel's colour ratios against the original (our reading of ReLLIE's colour-ratio term).

    ``map(i) = sum_p |c_p(x, i) - c_p(original, i)|`` with the chromaticity ``c_p(i) = x_p(i) / (sum_q x_q(i) +
    eps)``: 0 where a pixel's hue is kept.

    Args:
        x: enhanced image(s), float (B, C, H, W) or (C, H, W).
        original: the input before enhancement, same shape.
        eps: added to each pixel's channel sum.
        return_map: also return the per-pixel map.

    Returns:
        ``values`` (B,) >= 0, or ``(values, map)`` with ``map`` (B, 1, H, W).

    Example:
        >>> low = torch.full((1, 3, 4, 4), 0.1)
        >>> round(float(color_ratio_loss(low * 4, low)), 3)                     # same hue, brighter
        0.002
        >>> round(float(color_ratio_loss(low * torch.tensor([2.0, 1.0, 1.0]).view(3, 1, 1), low)), 3)  # redder
        0.332
    """
    x, original = _as_batch_pair(x, original)

    def ratios(t: torch.Tensor) -> torch.Tensor:
        return t / (t.sum(dim=1, keepdim=True) + eps)

    return _finish((ratios(x) - ratios(original)).abs().sum(dim=1, keepdim=True), return_map)


def spatial_consistency_loss(enhanced: torch.Tensor, original: torch.Tensor, *, region_size: int = 4,
                             return_map: bool = False) -> LossOutput:
    """Spatial consistency loss (Zero-DCE ``L_spa``, as in its paper, not its code's zero padding).

    With ``Y`` / ``I`` the enhanced / original channel means over ``region_size`` regions, each region scores
    ``E(i) = sum_j (|Y_i - Y_j| - |I_i - I_j|)^2`` over its 4 neighbours ``j`` inside the image.

    Args:
        enhanced: Enhanced image(s), float, shape (B, C, H, W) or (C, H, W).
        original: Input image(s) before enhancement, same shape.
        region_size: Side of the square regions, in pixels.
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W) giving each pixel its region's ``E``.

    Raises:
        ImageError: when the inputs are not float tensors of the same 3-D / 4-D shape.
        ValueError: when ``region_size`` is not a positive int.
    """
    enhanced, original = _as_batch_pair(enhanced, original, "enhanced", "original")
    _check_size(region_size, "region_size")
    height, width = enhanced.shape[-2:]
    y = _patch_means(enhanced.mean(dim=1, keepdim=True), region_size)
    i = _patch_means(original.mean(dim=1, keepdim=True), region_size)
    # squared change of the absolute neighbour difference, one value per neighbouring pair
    pair_h = ((y[..., :, 1:] - y[..., :, :-1]).abs() - (i[..., :, 1:] - i[..., :, :-1]).abs()) ** 2
    pair_v = ((y[..., 1:, :] - y[..., :-1, :]).abs() - (i[..., 1:, :] - i[..., :-1, :]).abs()) ** 2
    # each pair term counts for both regions of the pair
    region = F.pad(pair_h, (0, 1, 0, 0)) + F.pad(pair_h, (1, 0, 0, 0)) + F.pad(pair_v, (0, 0, 0, 1)) \
        + F.pad(pair_v, (0, 0, 1, 0))
    return _finish(_upsample_patches(region, region_size, height, width), return_map)


def illumination_smoothness_loss(alpha: torch.Tensor, *, return_map: bool = False, power: int = 2) -> LossOutput:
    """Illumination smoothness loss (Zero-DCE ``L_tvA``): squared total variation of alpha maps.

    Zero-DCE's released normalisation: squared forward differences averaged per direction, summed over the K
    channels, times 2 (a single row / column contributes 0). The map puts each difference on the pixel it starts
    from, ``map(y, x) = 2 sum_k [H/(H-1) dv_k(y, x)^2 + W/(W-1) dh_k(y, x)^2]``. ``power=1``: ``|d|`` instead.

    Args:
        alpha: Curve-parameter map(s), float, shape (B, K, H, W) or (K, H, W).
        return_map: Also return the per-pixel map.
        power: 2 (Zero-DCE, squared differences) or 1 (absolute differences).

    Returns:
        ``values`` (B,) >= 0, or ``(values, map)`` with ``map`` (B, 1, H, W) at alpha's resolution.

    Raises:
        ImageError: when ``alpha`` is not a float 3-D / 4-D tensor.
    """
    alpha = _as_batch(alpha, "alpha")
    if power not in (1, 2):
        raise ValueError(f"illumination_smoothness_loss: power must be 1 or 2, got {power!r}")
    height, width = alpha.shape[-2:]
    loss_map = alpha.new_zeros(alpha.shape[0], 1, height, width) + 0.0 * alpha.sum()
    if height > 1:
        dv = (alpha[..., 1:, :] - alpha[..., :-1, :]).abs().pow(power).sum(dim=1, keepdim=True)
        loss_map = loss_map + F.pad(dv, (0, 0, 0, 1)) * (2.0 * height / (height - 1))
    if width > 1:
        dh = (alpha[..., :, 1:] - alpha[..., :, :-1]).abs().pow(power).sum(dim=1, keepdim=True)
        loss_map = loss_map + F.pad(dh, (0, 1, 0, 0)) * (2.0 * width / (width - 1))
    return _finish(loss_map, return_map)


def _check_weights(**weights: float) -> None:
    """Raise ``ValueError`` naming the first weight that is not a finite number >= 0."""
    for name, value in weights.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _map_to_size(loss_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bring an alpha-resolution map to ``height x width`` by integer nearest upsampling (same mean).

    Raises:
        ImageError: when the image size is not an integer multiple of the alpha size.
    """
    alpha_h, alpha_w = loss_map.shape[-2:]
    if (alpha_h, alpha_w) == (height, width):
        return loss_map
    if height % alpha_h or width % alpha_w:
        raise ImageError(f"alpha: spatial size {alpha_h}x{alpha_w} does not divide the image size {height}x{width}; "
                         "with return_map=True alpha must be at the image resolution or an integer factor below it")
    return loss_map.repeat_interleave(height // alpha_h, dim=-2).repeat_interleave(width // alpha_w, dim=-1)


def nonreference_loss(enhanced: torch.Tensor, original: torch.Tensor, alpha: torch.Tensor | None = None, *,
                      w_exposure: float = 10.0, w_color: float = 5.0, w_spatial: float = 1.0, w_smooth: float = 200.0,
                      exposure_target: float = 0.6, patch_size: int = 16, region_size: int = 4,
                      return_map: bool = False) -> LossOutput:
    """Weighted Zero-DCE non-reference loss: the sum of the four terms below, each times its weight
    (the smoothness term skipped when ``alpha`` is None).

    Args:
        enhanced: Enhanced image(s), float in [0, 1], shape (B, C, H, W) or (C, H, W).
        original: Input image(s) before enhancement, same shape.
        alpha: Optional curve-parameter maps (B, K, h, w) with the same B. With
            ``return_map=True``, ``h, w`` must equal H, W or divide them exactly.
        w_exposure: Weight of :func:`exposure_loss`, >= 0.
        w_color: Weight of :func:`color_constancy_loss`, >= 0.
        w_spatial: Weight of :func:`spatial_consistency_loss`, >= 0.
        w_smooth: Weight of :func:`illumination_smoothness_loss`, >= 0.
        exposure_target: Well-exposedness level E of the exposure term.
        patch_size: Patch side of the exposure term.
        region_size: Region side of the spatial-consistency term.
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W), the weighted sum of the terms' maps
        (the smoothness map nearest-upsampled when alpha is smaller).

    Raises:
        ValueError: naming the weight when a weight is negative or not finite.
        ImageError: on malformed or mismatched tensors.
    """
    _check_weights(w_exposure=w_exposure, w_color=w_color, w_spatial=w_spatial, w_smooth=w_smooth)
    enhanced, original = _as_batch_pair(enhanced, original, "enhanced", "original")
    height, width = enhanced.shape[-2:]
    exposure = exposure_loss(enhanced, target=exposure_target, patch_size=patch_size, return_map=True)
    color = color_constancy_loss(enhanced, return_map=True)
    spatial = spatial_consistency_loss(enhanced, original, region_size=region_size, return_map=True)
    terms = [(w_exposure, exposure), (w_color, color), (w_spatial, spatial)]
    if alpha is not None:
        alpha = _as_batch(alpha, "alpha")
        if alpha.shape[0] != enhanced.shape[0]:
            raise ImageError(f"alpha: batch size {alpha.shape[0]} differs from enhanced's {enhanced.shape[0]}; "
                             "pass one alpha map stack per image")
        smooth_values, smooth_map = illumination_smoothness_loss(alpha, return_map=True)
        if return_map:
            smooth_map = _map_to_size(smooth_map, height, width)
        terms.append((w_smooth, (smooth_values, smooth_map)))

    values = sum(weight * term_values for weight, (term_values, _) in terms)
    if not return_map:
        return values
    return values, sum(weight * term_map for weight, (_, term_map) in terms)


class NonReferenceLoss(nn.Module):
    """Module form of :func:`nonreference_loss`, holding its keyword arguments (the same names and
    defaults, checked when the module is built): :attr:`params`.

    Raises:
        ValueError: naming the argument when a weight is negative or not finite, or a size is not a positive int.

    Example:
        >>> loss = NonReferenceLoss(w_exposure=80.0)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> loss(x, x * 0.5).shape
        torch.Size([2])
    """

    def __init__(self, *, w_exposure: float = 10.0, w_color: float = 5.0, w_spatial: float = 1.0,
                 w_smooth: float = 200.0, exposure_target: float = 0.6, patch_size: int = 16,
                 region_size: int = 4) -> None:
        super().__init__()
        _check_weights(w_exposure=w_exposure, w_color=w_color, w_spatial=w_spatial, w_smooth=w_smooth)
        _check_size(patch_size, "patch_size")
        _check_size(region_size, "region_size")
        #: The keyword arguments of :func:`nonreference_loss` the module applies.
        self.params = dict(w_exposure=w_exposure, w_color=w_color, w_spatial=w_spatial, w_smooth=w_smooth,
                           exposure_target=exposure_target, patch_size=patch_size, region_size=region_size)

    def forward(self, enhanced: torch.Tensor, original: torch.Tensor, alpha: torch.Tensor | None = None, *,
                return_map: bool = False) -> LossOutput:
        """See :func:`nonreference_loss`."""
        return nonreference_loss(enhanced, original, alpha, **self.params, return_map=return_map)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.params.items())


def ssim_loss(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, win_size: int = 11,
              return_map: bool = False) -> LossOutput:
    """``1 - SSIM`` per image, with :func:`rlenhance.metrics.ssim` (Gaussian window of ``win_size`` taps, sigma 1.5).

    Args:
        x: Prediction(s), float, shape (B, C, H, W) or (C, H, W); H and W >= ``win_size``.
        y: Target(s), same shape.
        data_range: Distance between the minimum and maximum possible pixel values.
        win_size: Odd number of Gaussian taps per axis.
        return_map: Also return the per-pixel map ``1 - ssim_map``.

    Returns:
        ``values`` (B,) in [0, 2], or ``(values, map)`` with ``map`` (B, 1, H, W); as for
        :func:`~rlenhance.metrics.ssim`, ``values`` is the mean of the map without its border of
        ``p = (win_size - 1) // 2`` pixels.

    Raises:
        ImageError: on malformed or mismatched tensors, or images smaller than the window.
        ValueError: an even or non-positive ``win_size``.
    """
    if return_map:
        values, ssim_map = ssim(x, y, data_range=data_range, win_size=win_size, return_map=True)
        return 1.0 - values, 1.0 - ssim_map
    return 1.0 - ssim(x, y, data_range=data_range, win_size=win_size)


def mse_loss(x: torch.Tensor, y: torch.Tensor, *, return_map: bool = False) -> LossOutput:
    """Mean squared error per image, over channels and pixels.

    Args:
        x: Prediction(s), float, shape (B, C, H, W) or (C, H, W).
        y: Target(s), same shape.
        return_map: Also return the per-pixel map (channel mean of the squared error).

    Returns:
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W).

    Raises:
        ImageError: on malformed or mismatched tensors.
    """
    x, y = _as_batch_pair(x, y)
    return _finish((x - y).pow(2).mean(dim=1, keepdim=True), return_map)


def l1_loss(x: torch.Tensor, y: torch.Tensor, *, return_map: bool = False) -> LossOutput:
    """Mean absolute error per image, over channels and pixels: :func:`mse_loss` (same arguments,
    shapes and errors) with ``|x - y|`` in place of ``(x - y)^2``."""
    x, y = _as_batch_pair(x, y)
    return _finish((x - y).abs().mean(dim=1, keepdim=True), return_map)
