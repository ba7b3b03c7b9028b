"""Per-pixel selection among candidate images (PixelRL's action execution)."""

from __future__ import annotations

import torch

__all__ = ["select_per_pixel"]


def select_per_pixel(candidates: torch.Tensor, actions: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
    """Pick, at every pixel, the candidate chosen by that pixel's action (``torch.gather``).

    ``out[b, c, h, w] = candidates[b, actions[b, (c,) h, w], c, h, w]``

    Args:
        candidates: Candidate images, shape (B, K, C, H, W), any float dtype (e.g. the output of
            :func:`rlenhance.ops.pixelrl_filter_bank`). Gradients flow back to it.
        actions: Integer tensor (not bool) on the same device, values in [0, K - 1], of shape
            (B, H, W) or (B, 1, H, W) (one action per pixel, shared by all channels) or
            (B, C, H, W) (one action per pixel and channel).
        validate: Check that every action is in [0, K - 1] (costs a device sync on GPU). Shape,
            dtype and device are always checked (free). With ``validate=False`` an out-of-range
            action gives an undefined result or a device-side error.

    Returns:
        Tensor of shape (B, C, H, W) with the dtype and device of ``candidates``.

    Raises:
        ValueError: wrong shapes, dtype or device, or (with ``validate``) an action outside [0, K - 1].

    Example:
        >>> cands = torch.stack([torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)], dim=1)
        >>> select_per_pixel(cands, torch.tensor([[[0, 1], [1, 0]]]))[0, 0]
        tensor([[0., 1.],
                [1., 0.]])
    """
    if not isinstance(candidates, torch.Tensor) or candidates.ndim != 5:
        got = tuple(candidates.shape) if isinstance(candidates, torch.Tensor) else type(candidates).__name__
        raise ValueError(f"candidates must be a tensor of shape (B, K, C, H, W); got {got}")
    b, k, c, h, w = candidates.shape
    accepted = f"(B, H, W) = {(b, h, w)}, (B, 1, H, W) = {(b, 1, h, w)} or (B, C, H, W) = {(b, c, h, w)}"
    if not isinstance(actions, torch.Tensor):
        raise ValueError(f"actions must be an integer tensor of shape {accepted}; got {type(actions).__name__}")
    if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor (e.g. torch.int64); got dtype {actions.dtype}")
    if actions.device != candidates.device:
        raise ValueError(f"actions are on {actions.device} but candidates on {candidates.device}; "
                         "put both on the same device")
    shape = tuple(actions.shape)
    if shape == (b, h, w):
        actions = actions.unsqueeze(1)
    elif shape not in ((b, 1, h, w), (b, c, h, w)):
        raise ValueError(f"actions of shape {shape} do not fit candidates of shape {tuple(candidates.shape)}; "
                         f"accepted: {accepted}")
    if validate and actions.numel() > 0:
        lo, hi = int(actions.min()), int(actions.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"actions must be in [0, {k - 1}] (K = {k} candidates); got values in [{lo}, {hi}]")
    index = actions.long().expand(b, c, h, w).unsqueeze(1)  # (B, 1, C, H, W)
    return candidates.gather(1, index).squeeze(1)
