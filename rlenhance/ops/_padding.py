"""OpenCV's border modes on (..., H, W) tensors, for images of any size down to 1x1.

reflect-101 is OpenCV's ``BORDER_DEFAULT`` (``gfedcb|abcdefgh|gfedcba``, used by the Gaussian,
box and bilateral filters); replicate is ``aaaaaa|abcdefgh|hhhhhhh`` (used by the median).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_REFLECT_101 = "reflect101"
_REPLICATE = "replicate"


def _border_index(n: int, pad: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source indices, shape (n + 2 * pad,), of a padded axis, as OpenCV's ``borderInterpolate``."""
    idx = torch.arange(-pad, n + pad, device=device)
    if mode == _REPLICATE:
        return idx.clamp(0, n - 1)
    period = 2 * (n - 1) + (n == 1)  # 1 for a single pixel, whose every index is 0 (no branch: n may be traced)
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
