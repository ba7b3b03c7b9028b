"""Image enhancement losses: Zero-DCE / ReLLIE non-reference losses and reference losses.

Every loss takes float tensors of shape ``(B, C, H, W)`` (a ``(C, H, W)`` tensor is treated as a
batch of one) on any device, is differentiable, and returns one value per image, shape ``(B,)``;
lower is better. With ``return_map=True`` a loss returns ``(values, loss_map)`` where ``loss_map``
has shape ``(B, 1, H, W)`` at the input's full resolution and, unless a docstring says otherwise,
``values == loss_map.mean(dim=(1, 2, 3))`` exactly (up to float rounding). Losses computed on
patches or regions achieve this by defining the value as the mean of the patch values copied back
to their pixels (nearest upsampling); on sizes divisible by the patch size that is the plain mean
over patches used by Zero-DCE, otherwise partial border patches weigh by their pixel count. The
per-pixel maps serve as reward maps for pixel-wise RL (reward = -map).

Weights and parameters are arguments with Zero-DCE's released values as keyword defaults
(Guo et al., CVPR 2020: exposure 10 with E = 0.6 on 16x16 patches, colour 5, spatial 1 on 4x4
regions, illumination smoothness 200).

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

__all__ = [
    "NonReferenceLoss",
    "color_constancy_loss",
    "color_ratio_loss",
    "exposure_gap",
    "exposure_loss",
    "exposure_score",
    "illumination_smoothness_loss",
    "l1_loss",
    "mse_loss",
    "nonreference_loss",
    "spatial_consistency_loss",
    "ssim_loss",
]

LossOutput = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _patch_means(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of each ``size x size`` patch: (B, 1, H, W) -> (B, 1, ceil(H/size), ceil(W/size)).

    Partial patches on the bottom/right border are averaged over the pixels they contain.
    """
    return F.avg_pool2d(x, size, stride=size, ceil_mode=True, count_include_pad=False)


def _upsample_patches(values: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Copy each patch value to its ``size x size`` pixels and crop to ``height x width``."""
    full = values.repeat_interleave(size, dim=-2).repeat_interleave(size, dim=-1)
    return full[..., :height, :width]


def _finish(values_map: torch.Tensor, return_map: bool) -> LossOutput:
    """Return the per-image mean of a (B, 1, H, W) map, and the map itself when asked."""
    values = values_map.mean(dim=(1, 2, 3))
    if return_map:
        return values, values_map
    return values


def exposure_loss(
    x: torch.Tensor, *, target: float = 0.6, patch_size: int = 16, over: float = 0.0, return_map: bool = False
) -> LossOutput:
    """Exposure control loss (Zero-DCE ``L_exp``).

    The channel mean of ``x`` is averaged over non-overlapping ``patch_size x patch_size`` patches
    and each patch scores ``(patch mean - target)^2``; the map gives every pixel its patch's
    score and the value is the map mean, i.e. Zero-DCE's mean over patches when H and W are
    multiples of ``patch_size``. Otherwise the bottom/right patches are partial: their mean is
    over the pixels they hold, and they weigh in proportion to their size. With ``over > 0`` a
    patch brighter than the target scores ``(1 + over)`` times its square error (one darker by
    as much scores it once), so an overshoot costs more than falling short.

    Args:
        x: Enhanced image(s), float in [0, 1], shape (B, C, H, W) or (C, H, W).
        target: Well-exposedness level E (Zero-DCE: 0.6).
        patch_size: Side of the square patches, in pixels.
        over: Extra weight of the errors above the target, >= 0 (0: Zero-DCE's symmetric loss).
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W), constant on each patch,
        and ``values == map.mean(dim=(1, 2, 3))``.

    Raises:
        ImageError: when ``x`` is not a float 3-D / 4-D tensor.
        ValueError: when ``patch_size`` is not a positive int, or ``over`` is not a finite
            number >= 0.
    """
    x = _as_batch(x, "x")
    _check_size(patch_size, "patch_size")
    height, width = x.shape[-2:]
    patch_error = exposure_score(_patch_means(x.mean(dim=1, keepdim=True), patch_size), target, over=over)
    return _finish(_upsample_patches(patch_error, patch_size, height, width), return_map)


def exposure_score(means: torch.Tensor, target: float | torch.Tensor, *, over: float = 0.0) -> torch.Tensor:
    """Score of brightness means against the exposure target: ``(mean - target)^2``, times
    ``1 + over`` where the mean is above the target (:func:`exposure_loss`'s per-patch score; the
    low-light env scores the whole image's mean with it too).

    Raises:
        ValueError: when ``over`` is not a finite number >= 0.
    """
    if not (math.isfinite(over) and over >= 0):
        raise ValueError(f"over: expected a finite weight >= 0 (0: symmetric), got {over!r}")
    error = means - target
    return error.pow(2) * (1.0 + over * (error > 0)) if over else error.pow(2)


def exposure_gap(x: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Signed per-pixel exposure error ``target - mean_c(x)``: what is left to brighten (> 0) or
    darken (< 0) to reach the exposure target. A conditioned low-light policy sees it as an input
    plane, so "how far from *this* target" is read directly instead of being inferred from a
    constant conditioning plane (compare FFDNet's noise-level map).

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

    With ``m_p`` the mean of channel ``p`` over the image and ``D_pq = (m_p - m_q)^2``::

        k = sqrt(D_rg^2 + D_rb^2 + D_gb^2)

    (the paper writes ``sum (J^p - J^q)^2``; the released code, whose weight 5 we keep as the
    default, takes this root of summed fourth powers). For C != 3 the sum runs over all channel
    pairs ``p < q``; for C = 1 the loss is 0.

    The map attributes ``k`` to pixels: with ``d_pq(i) = x_p(i) - x_q(i)`` the channel difference
    at pixel ``i`` and ``dbar_pq = m_p - m_q`` its image mean::

        map(i) = sum_pq dbar_pq^3 d_pq(i) / k        (0 where k = 0)

    whose mean over pixels is exactly ``k``. It is large where a pixel's colour difference points
    along the image's overall colour cast, and negative where it opposes it (such pixels reduce
    the cast); a uniformly coloured image has ``map == k`` everywhere.

    Args:
        x: Enhanced image(s), float, shape (B, C, H, W) or (C, H, W); RGB for C = 3.
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,) >= 0, or ``(values, map)`` with ``map`` (B, 1, H, W) and
        ``values == map.mean(dim=(1, 2, 3))``. The gradient is finite everywhere (0 for a gray
        image).

    Raises:
        ImageError: when ``x`` is not a float 3-D / 4-D tensor.
    """
    x = _as_batch(x, "x")
    channels = x.shape[1]
    if channels < 2:
        zeros = 0.0 * x[:, :1]  # (B, 1, H, W) of zeros that keeps x in the autograd graph
        return _finish(zeros, return_map)

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
    loss_map = (weights * diff).sum(dim=1, keepdim=True)
    return k.flatten(), loss_map


def color_ratio_loss(x: torch.Tensor, original: torch.Tensor, *, eps: float = 1e-3,
                     return_map: bool = False) -> LossOutput:
    """Change of each pixel's colour ratios against the original (ReLLIE's colour-ratio term).

    With the chromaticity ``c_p(i) = x_p(i) / (sum_q x_q(i) + eps)`` of pixel ``i``::

        map(i) = sum_p |c_p(enhanced, i) - c_p(original, i)|

    0 where a pixel's hue is kept (all channels scaled alike). ReLLIE penalises this change with
    weight 20 (its code was not at hand; this is our reading of the term); ``eps`` keeps black
    pixels finite.

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


def spatial_consistency_loss(
    enhanced: torch.Tensor,
    original: torch.Tensor,
    *,
    region_size: int = 4,
    return_map: bool = False,
) -> LossOutput:
    """Spatial consistency loss (Zero-DCE ``L_spa``, as in its paper).

    Both images are reduced to their channel mean and averaged over ``region_size x region_size``
    regions (ceil mode: bottom/right regions may be partial). For each region ``i`` and each of
    its 4 neighbours ``j`` (left, right, up, down)::

        E(i) = sum_j (|Y_i - Y_j| - |I_i - I_j|)^2

    with ``Y`` the enhanced and ``I`` the original region means. Neighbours outside the image are
    skipped (their term is 0). Zero-DCE's released code instead uses signed differences and
    zero padding, which makes border regions compare against black.

    Args:
        enhanced: Enhanced image(s), float, shape (B, C, H, W) or (C, H, W).
        original: Input image(s) before enhancement, same shape.
        region_size: Side of the square regions, in pixels.
        return_map: Also return the per-pixel map.

    Returns:
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W) giving each pixel its
        region's ``E`` (nearest upsampling) and ``values == map.mean(dim=(1, 2, 3))``: the mean of
        ``E`` over regions when H and W are multiples of ``region_size``, otherwise partial
        regions weigh by their pixel count.

    Raises:
        ImageError: when the inputs are not float tensors of the same 3-D / 4-D shape.
        ValueError: when ``region_size`` is not a positive int.
    """
    enhanced, original = _as_batch_pair(enhanced, original, "enhanced", "original")
    _check_size(region_size, "region_size")
    height, width = enhanced.shape[-2:]
    y = _patch_means(enhanced.mean(dim=1, keepdim=True), region_size)
    i = _patch_means(original.mean(dim=1, keepdim=True), region_size)

    # Squared change of the absolute neighbour difference, one value per neighbouring pair.
    pair_h = ((y[..., :, 1:] - y[..., :, :-1]).abs() - (i[..., :, 1:] - i[..., :, :-1]).abs()) ** 2
    pair_v = ((y[..., 1:, :] - y[..., :-1, :]).abs() - (i[..., 1:, :] - i[..., :-1, :]).abs()) ** 2
    # Each pair term counts for both regions of the pair (right of one, left of the other).
    region = (
        F.pad(pair_h, (0, 1, 0, 0))
        + F.pad(pair_h, (1, 0, 0, 0))
        + F.pad(pair_v, (0, 0, 0, 1))
        + F.pad(pair_v, (0, 0, 1, 0))
    )
    return _finish(_upsample_patches(region, region_size, height, width), return_map)


def illumination_smoothness_loss(alpha: torch.Tensor, *, return_map: bool = False, power: int = 2) -> LossOutput:
    """Illumination smoothness loss (Zero-DCE ``L_tvA``): squared total variation of alpha maps.

    For curve-parameter maps ``A`` with K channels (Zero-DCE: 8 iterations x 3 colours)::

        L = 2 * sum_k [ sum (A[k, y+1, x] - A[k, y, x])^2 / ((H - 1) W)
                      + sum (A[k, y, x+1] - A[k, y, x])^2 / (H (W - 1)) ]

    i.e. Zero-DCE's released normalisation: squared differences averaged per direction, summed
    over channels (not averaged), times 2. A direction with a single row/column contributes 0.

    The map puts each forward difference on the pixel it starts from (the last row has no
    vertical term, the last column no horizontal term), rescaled so its mean is exactly ``L``::

        map(y, x) = 2 * sum_k [ H/(H-1) dv_k(y, x)^2 + W/(W-1) dh_k(y, x)^2 ]

    With ``power=1`` the differences enter as ``|d|`` instead of ``d^2`` (anisotropic total
    variation): its pull towards a flat map does not fade as the map flattens, where the squared
    form's gradient ``2 d`` vanishes.

    Args:
        alpha: Curve-parameter map(s), float, shape (B, K, H, W) or (K, H, W).
        return_map: Also return the per-pixel map.
        power: 2 (Zero-DCE, squared differences) or 1 (absolute differences).

    Returns:
        ``values`` (B,) >= 0, or ``(values, map)`` with ``map`` (B, 1, H, W) at alpha's
        resolution and ``values == map.mean(dim=(1, 2, 3))``.

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
    """Bring an alpha-resolution map to ``height x width`` by integer nearest upsampling.

    Repeating every value ``f`` times per axis keeps the map mean unchanged.

    Raises:
        ImageError: when the image size is not an integer multiple of the alpha size.
    """
    alpha_h, alpha_w = loss_map.shape[-2:]
    if (alpha_h, alpha_w) == (height, width):
        return loss_map
    if height % alpha_h or width % alpha_w:
        raise ImageError(
            f"alpha: spatial size {alpha_h}x{alpha_w} does not divide the image size "
            f"{height}x{width}; with return_map=True alpha must be at the image resolution or "
            "an integer factor below it"
        )
    return loss_map.repeat_interleave(height // alpha_h, dim=-2).repeat_interleave(
        width // alpha_w, dim=-1
    )


def nonreference_loss(
    enhanced: torch.Tensor,
    original: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    w_exposure: float = 10.0,
    w_color: float = 5.0,
    w_spatial: float = 1.0,
    w_smooth: float = 200.0,
    exposure_target: float = 0.6,
    patch_size: int = 16,
    region_size: int = 4,
    return_map: bool = False,
) -> LossOutput:
    """Weighted Zero-DCE non-reference loss for low-light enhancement.

    ``w_exposure * exposure_loss(enhanced) + w_color * color_constancy_loss(enhanced)
    + w_spatial * spatial_consistency_loss(enhanced, original)
    + w_smooth * illumination_smoothness_loss(alpha)``; the smoothness term is skipped when
    ``alpha`` is None. Defaults are Zero-DCE's released weights (10, 5, 1, 200, E = 0.6).
    ReLLIE's reward uses the same family with exposure 80, smoothness 200, spatial 1 (plus a
    colour-ratio term not implemented here).

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
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W), the same weighted sum of
        the terms' maps (the smoothness map nearest-upsampled when alpha is smaller), and
        ``values == map.mean(dim=(1, 2, 3))``.

    Raises:
        ValueError: naming the weight when a weight is negative or not finite.
        ImageError: on malformed or mismatched tensors.
    """
    _check_weights(w_exposure=w_exposure, w_color=w_color, w_spatial=w_spatial, w_smooth=w_smooth)
    enhanced, original = _as_batch_pair(enhanced, original, "enhanced", "original")
    height, width = enhanced.shape[-2:]
    exposure = exposure_loss(
        enhanced, target=exposure_target, patch_size=patch_size, return_map=True
    )
    color = color_constancy_loss(enhanced, return_map=True)
    spatial = spatial_consistency_loss(
        enhanced, original, region_size=region_size, return_map=True
    )
    terms = [(w_exposure, exposure), (w_color, color), (w_spatial, spatial)]
    if alpha is not None:
        alpha = _as_batch(alpha, "alpha")
        if alpha.shape[0] != enhanced.shape[0]:
            raise ImageError(
                f"alpha: batch size {alpha.shape[0]} differs from enhanced's {enhanced.shape[0]}; "
                "pass one alpha map stack per image"
            )
        smooth_values, smooth_map = illumination_smoothness_loss(alpha, return_map=True)
        if return_map:
            smooth_map = _map_to_size(smooth_map, height, width)
        terms.append((w_smooth, (smooth_values, smooth_map)))

    values = sum(weight * term_values for weight, (term_values, _) in terms)
    if not return_map:
        return values
    loss_map = sum(weight * term_map for weight, (_, term_map) in terms)
    return values, loss_map


class NonReferenceLoss(nn.Module):
    """Module form of :func:`nonreference_loss`, holding its keyword arguments (the same names and
    defaults, checked when the module is built): :attr:`params`.

    Raises:
        ValueError: naming the argument when a weight is negative or not finite, or a size is not a
            positive int.

    Example:
        >>> loss = NonReferenceLoss(w_exposure=80.0)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> loss(x, x * 0.5).shape
        torch.Size([2])
    """

    def __init__(
        self,
        *,
        w_exposure: float = 10.0,
        w_color: float = 5.0,
        w_spatial: float = 1.0,
        w_smooth: float = 200.0,
        exposure_target: float = 0.6,
        patch_size: int = 16,
        region_size: int = 4,
    ) -> None:
        super().__init__()
        _check_weights(
            w_exposure=w_exposure, w_color=w_color, w_spatial=w_spatial, w_smooth=w_smooth
        )
        _check_size(patch_size, "patch_size")
        _check_size(region_size, "region_size")
        #: The keyword arguments of :func:`nonreference_loss` the module applies.
        self.params = dict(w_exposure=w_exposure, w_color=w_color, w_spatial=w_spatial, w_smooth=w_smooth,
                           exposure_target=exposure_target, patch_size=patch_size, region_size=region_size)

    def forward(
        self,
        enhanced: torch.Tensor,
        original: torch.Tensor,
        alpha: torch.Tensor | None = None,
        *,
        return_map: bool = False,
    ) -> LossOutput:
        """See :func:`nonreference_loss`."""
        return nonreference_loss(enhanced, original, alpha, **self.params, return_map=return_map)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.params.items())


def ssim_loss(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, win_size: int = 11, return_map: bool = False
) -> LossOutput:
    """``1 - SSIM`` per image, using :func:`rlenhance.metrics.ssim` (Gaussian window of
    ``win_size`` taps, sigma 1.5; the default 11 is also PIQ's ``SSIMLoss``).

    Args:
        x: Prediction(s), float, shape (B, C, H, W) or (C, H, W); H and W >= ``win_size``.
        y: Target(s), same shape.
        data_range: Distance between the minimum and maximum possible pixel values.
        win_size: Odd number of Gaussian taps per axis (the gated PixelRNN seed used 7).
        return_map: Also return the per-pixel map ``1 - ssim_map``.

    Returns:
        ``values`` (B,) in [0, 2], or ``(values, map)`` with ``map`` (B, 1, H, W). As for
        :func:`~rlenhance.metrics.ssim`, the value is the mean of the map without its border of
        ``p = (win_size - 1) // 2`` pixels (skimage's convention), so here
        ``values == map[..., p:-p, p:-p].mean((1, 2, 3))`` rather than the mean of the whole map;
        the border holds the loss computed with symmetric extension of the image.

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
        ``values`` (B,), or ``(values, map)`` with ``map`` (B, 1, H, W) and
        ``values == map.mean(dim=(1, 2, 3))``.

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
