"""Scores inside a hole (completion): the error, PSNR and SSIM of the missing pixels only, per image.

Masks are float (B, 1, H, W) with 1 = missing pixel (as :class:`rlenhance.data.OccludedPairs` and
:func:`rlenhance.data.random_occlusion` give them); images float (B, C, H, W). A completed image's SSIM
is dominated by its known pixels: report these.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlenhance.errors import ImageError
from rlenhance.metrics import _as_batch_pair, _check_positive, ssim

__all__ = ["check_mask", "hole_l1", "hole_mse", "hole_psnr", "hole_ssim"]

#: Smallest hole size (sum of mask values) divided by; keeps gradients finite for empty holes.
_MIN_HOLE = 1e-8


def check_mask(x: Tensor, mask: Tensor, name: str = "mask") -> None:
    """Raise ImageError unless ``mask`` is a tensor (B, 1, H, W) of the image ``x``'s batch and size."""
    if not torch.is_tensor(mask) or mask.dim() != 4 or mask.shape[1] != 1 \
            or mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        got = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
        raise ImageError(f"{name} has shape {got}; expected ({x.shape[0]}, 1, {x.shape[-2]}, {x.shape[-1]}) "
                         "(1 = missing pixel)")


def _hole_mean(error: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``error`` (B, C, H, W) over the hole pixels and channels, per image (0 for no hole)."""
    mask = mask.to(error.dtype)
    count = mask.sum(dim=(1, 2, 3)) * error.shape[1]
    return (error * mask).sum(dim=(1, 2, 3)) / count.clamp_min(_MIN_HOLE)


def _checked(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    pred, target = _as_batch_pair(pred, target, "pred", "target")
    check_mask(pred, mask)
    return pred, target


def hole_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error inside the hole, per image.

    Args:
        pred, target: float (B, C, H, W).
        mask: float (B, 1, H, W), 1 = missing pixel (soft masks weigh pixels).

    Returns:
        float (B,): ``sum(|pred - target| mask) / (C sum(mask))``; 0 for an image without hole.
    """
    pred, target = _checked(pred, target, mask)
    return _hole_mean((pred - target).abs(), mask)


def hole_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error inside the hole, per image (what hole PSNR scores).

    Args:
        pred, target: float (B, C, H, W).
        mask: float (B, 1, H, W), 1 = missing pixel (soft masks weigh pixels).

    Returns:
        float (B,): ``sum((pred - target)^2 mask) / (C sum(mask))``; 0 for an image without hole.
    """
    pred, target = _checked(pred, target, mask)
    return _hole_mean((pred - target).square(), mask)


def hole_psnr(pred: Tensor, target: Tensor, mask: Tensor, *, data_range: float = 1.0) -> Tensor:
    """PSNR inside the hole, per image, in dB: ``10 log10(data_range^2 / MSE_hole)``.

    Args:
        pred, target: float (B, C, H, W).
        mask: float (B, 1, H, W), 1 = missing pixel.
        data_range: distance between the smallest and largest pixel values (> 0).

    Returns:
        float (B,); ``+inf`` for a perfect hole, NaN for an image without hole.
    """
    _check_positive(data_range, "data_range")
    mse = hole_mse(pred, target, mask)
    empty = mask.to(mse.dtype).sum(dim=(1, 2, 3)) == 0
    value = 10.0 * torch.log10(data_range**2 / mse)
    return torch.where(empty, torch.full_like(value, float("nan")), value)


def hole_ssim(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """SSIM inside the hole, per image: the mean of the SSIM map over the missing pixels.

    Args:
        pred, target: float (B, C, H, W) (H, W >= 11).
        mask: float (B, 1, H, W), 1 = missing pixel.

    Returns:
        float (B,); NaN for an image without hole.
    """
    pred, target = _checked(pred, target, mask)
    ssim_map = ssim(pred, target, return_map=True)[1]
    area = mask.sum(dim=(1, 2, 3))
    value = (ssim_map * mask).sum(dim=(1, 2, 3)) / area.clamp_min(1.0)
    return torch.where(area > 0, value, torch.full_like(value, float("nan")))
