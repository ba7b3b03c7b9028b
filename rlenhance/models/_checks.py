"""Input checks shared by the supervised networks (MRPNet, the PixelRNNs, FFDNet, the completion U-Net)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlenhance.errors import ImageError


def _check_positive_int(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name}={value!r}; expected an integer >= 1")


def _check_image(owner: str, x: Tensor, channels: int, name: str = "input") -> None:
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != channels or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise ImageError(f"{owner}: {name} is {got}; expected a float tensor of shape (B, {channels}, H, W)")
