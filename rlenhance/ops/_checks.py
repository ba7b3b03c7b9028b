"""Argument checks shared by the ops: every op module takes its checks from here.

Bad image batches raise :class:`~rlenhance.errors.ImageError`, anything else ``ValueError`` naming what is
accepted. Only :func:`_check_action_range` and :func:`_check_pixels` read values back (a GPU sync).
"""

from __future__ import annotations

import math

import torch

from rlenhance.errors import ImageError


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    """``x`` must be a non-empty floating tensor of shape (B, C, H, W); raises ImageError."""
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}")
    if x.ndim != 4:
        raise ImageError(f"{name} must have shape (B, C, H, W); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name} must be a floating-point tensor (float32 in [0, 1]); got dtype {x.dtype}")
    if min(x.shape) == 0:
        raise ImageError(f"{name} must be non-empty; got shape {tuple(x.shape)}")


def _check_ksize(ksize: int, name: str = "ksize") -> None:
    """A window size must be an odd positive int."""
    if isinstance(ksize, bool) or not isinstance(ksize, int) or ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int (1, 3, 5, ...); got {ksize!r}")


def _check_positive(value: float, name: str) -> None:
    """A sigma (or any scale) must be a finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")


def _check_bilateral_params(d: int, sigma_color: float, sigma_space: float, lut_bins_per_channel: int) -> None:
    """The parameters of :func:`rlenhance.ops.bilateral_filter2d`."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive int (neighbourhood diameter); got {d!r}")
    _check_positive(sigma_color, "sigma_color")
    _check_positive(sigma_space, "sigma_space")
    if isinstance(lut_bins_per_channel, bool) or not isinstance(lut_bins_per_channel, int) \
            or lut_bins_per_channel < 1:
        raise ValueError(f"lut_bins_per_channel must be a positive int; got {lut_bins_per_channel!r}")


def _check_pixels(pixels: torch.Tensor, x: torch.Tensor) -> None:
    """Flat pixel indices ``b * H * W + y * W + x`` of ``x``: int64 (n,), same device, in range (a sync)."""
    b, _, h, w = x.shape
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 1 or pixels.dtype != torch.long:
        got = f"shape {tuple(pixels.shape)}, dtype {pixels.dtype}" if isinstance(pixels, torch.Tensor) \
            else type(pixels).__name__
        raise ValueError(f"pixels must be an int64 tensor (n,) of flat indices b * H * W + y * W + x; got {got}")
    if pixels.device != x.device:
        raise ValueError(f"pixels are on {pixels.device} but x on {x.device}; put both on the same device")
    if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= b * h * w):
        raise ValueError(f"pixels must be in [0, B * H * W - 1] = [0, {b * h * w - 1}]; got values in "
                         f"[{int(pixels.min())}, {int(pixels.max())}]")


def _check_pixel_actions(actions: torch.Tensor, bchw: tuple[int, int, int, int], device: torch.device, *,
                        like: str, like_shape: tuple[int, ...]) -> None:
    """Check per-pixel actions for images of shape ``bchw``: an integer tensor (not bool) on ``device`` of shape
    (B, H, W), (B, 1, H, W) or (B, C, H, W); ``like`` / ``like_shape`` name their images in the messages."""
    b, c, h, w = bchw
    accepted = f"(B, H, W) = {(b, h, w)}, (B, 1, H, W) = {(b, 1, h, w)} or (B, C, H, W) = {(b, c, h, w)}"
    if not isinstance(actions, torch.Tensor):
        raise ValueError(f"actions must be an integer tensor of shape {accepted}; got {type(actions).__name__}")
    if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor (e.g. torch.int64); got dtype {actions.dtype}")
    if actions.device != device:
        raise ValueError(f"actions are on {actions.device} but {like} on {device}; put both on the same device")
    shape = tuple(actions.shape)
    if shape not in ((b, h, w), (b, 1, h, w), (b, c, h, w)):
        raise ValueError(f"actions of shape {shape} do not fit {like} of shape {tuple(like_shape)}; "
                         f"accepted: {accepted}")


def _check_action_range(actions: torch.Tensor, k: int, noun: str) -> None:
    """Check that every action is in [0, k - 1] (a device sync on GPU); ``noun`` names the K things."""
    if actions.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(actions))
    if lo < 0 or hi >= k:
        raise ValueError(f"actions must be in [0, {k - 1}] (K = {k} {noun}); got values in [{lo}, {hi}]")
