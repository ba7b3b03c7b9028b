"""Per-pixel action-value (Q) networks for soft actor-critic on pixel-wise MDPs (RSE-RL style).

The critic is fully convolutional: one Q value per pixel (continuous actions) or per pixel, action map
and discrete action (discrete actions). Layout::

    x (B, in_channels, H, W) [+ cond planes] [+ action planes (continuous)]
      -> (optional) average-pool by ``downscale``
      -> trunk: one conv + ReLU per dilation (:class:`rlenhance.models.policy.ConvTrunk`)
      -> head conv: 1 plane (continuous) or out_channels * n_actions planes (discrete)
      -> (optional) bilinear upsampling back to (H, W)

Example:
    >>> q = PixelQNetwork(in_channels=6, out_channels=3, n_actions=None, cond_dim=5)
    >>> q(torch.rand(2, 6, 16, 16), torch.rand(2, 5), actions=torch.rand(2, 3, 16, 16) * 2 - 1).shape
    torch.Size([2, 1, 16, 16])
    >>> q = PixelQNetwork(in_channels=1, out_channels=1, n_actions=9)
    >>> q(torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 1, 9, 16, 16])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rlenhance.errors import ImageError
from rlenhance.models import ArchMixin
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.trunks import (
    ConvTrunk,
    append_cond_planes,
    check_net_args,
    check_planes,
    pool_blocks,
    upsample_blocks,
)

__all__ = ["PixelQNetwork"]


class PixelQNetwork(ArchMixin, nn.Module):
    """Fully convolutional per-pixel Q network.

    * Continuous (``n_actions=None``): ``Q(s, a)`` where the action maps ``a`` (B, out_channels,
      H, W), float in [-1, 1], are extra input planes; output (B, 1, H, W): one value per pixel
      for the pixel's whole action vector.
    * Discrete (``n_actions=K``): ``Q(s, .)`` for every action of every action map, output
      (B, out_channels, K, H, W) (each action map is its own agent, as in the policy).

    Args:
        in_channels: image planes of the state (see
            :func:`rlenhance.models.policy.build_policy_input`), not counting ``cond_dim``.
        out_channels: number of action maps.
        n_actions: discrete actions per pixel, or ``None`` for continuous actions.
        width: feature planes of every trunk layer.
        dilations: dilation of each trunk convolution (the first maps the input to ``width``).
        kernel_size: odd kernel size of every convolution.
        downscale: s >= 1; the net runs on the input average-pooled by s, the Q maps upsampled back.
        cond_dim: number of conditioning values, broadcast as constant input planes (0 = none).

    Shape:
        x: float (B, in_channels, H, W); cond: float (B, cond_dim); actions: float
        (B, out_channels, H, W) (continuous only).
    """

    def __init__(self, in_channels: int, out_channels: int, n_actions: int | None, width: int = 32,
                 dilations: Sequence[int] = (1, 2, 3, 4, 3, 2), kernel_size: int = 3, downscale: int = 1,
                 cond_dim: int = 0):
        super().__init__()
        check_net_args("PixelQNetwork", in_channels=in_channels, out_channels=out_channels, width=width,
                       downscale=downscale, n_actions=n_actions, cond_dim=cond_dim, kernel_size=kernel_size,
                       dilations=dilations)
        self._kwargs: dict[str, Any] = dict(
            in_channels=int(in_channels), out_channels=int(out_channels),
            n_actions=None if n_actions is None else int(n_actions), width=int(width),
            dilations=[int(d) for d in dilations], kernel_size=int(kernel_size),
            downscale=int(downscale), cond_dim=int(cond_dim),
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.n_actions = self._kwargs["n_actions"]
        self.width = int(width)
        self.downscale = int(downscale)
        self.cond_dim = int(cond_dim)
        action_planes = self.out_channels if self.n_actions is None else 0
        self.trunk = ConvTrunk(self.in_channels + self.cond_dim + action_planes, self.width,
                               self._kwargs["dilations"], kernel_size)
        head_planes = 1 if self.n_actions is None else self.out_channels * self.n_actions
        self.head = nn.Conv2d(self.width, head_planes, kernel_size, padding=kernel_size // 2)

    @classmethod
    def for_policy(cls, policy: PixelActorCritic, **overrides: Any) -> PixelQNetwork:
        """A critic that fits ``policy``; its trunk uses the policy's trunk then branch dilations.

        Args:
            policy: the actor.
            **overrides: kwargs replacing the derived ones (``width``, ``dilations``, ...).
        """
        kw = policy.arch()["kwargs"]
        kwargs: dict[str, Any] = dict(
            in_channels=policy.in_channels, out_channels=policy.out_channels,
            n_actions=policy.n_actions, width=policy.width, downscale=policy.downscale,
            cond_dim=policy.cond_dim, kernel_size=kw.get("kernel_size", 3),
            dilations=list(kw.get("dilations", (1, 2, 3, 4))) + list(kw.get("branch_dilations", ())),
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    def forward(self, x: Tensor, cond: Tensor | None = None, actions: Tensor | None = None,
                full_resolution: bool = True) -> Tensor:
        """Per-pixel Q values.

        Args:
            x: float, shape (B, in_channels, H, W).
            cond: float, shape (B, cond_dim), required iff ``cond_dim > 0``.
            actions: continuous nets only: float, shape (B, out_channels, H, W), in [-1, 1].
            full_resolution: upsample to (H, W); False keeps the working resolution
                (ceil(H / downscale), ceil(W / downscale)).

        Returns:
            float, (B, 1, H, W) for a continuous net, (B, out_channels, n_actions, H, W) for a
            discrete one.

        Raises:
            ImageError: x or actions have the wrong shape.
            ValueError: cond is missing, superfluous or of the wrong shape.
        """
        check_planes("PixelQNetwork", x, self.in_channels)
        b, _, height, width = x.shape
        parts = [x]
        if self.n_actions is None:
            expected = (b, self.out_channels, height, width)
            if actions is None or tuple(actions.shape) != expected:
                got = None if actions is None else tuple(actions.shape)
                raise ImageError(f"PixelQNetwork: actions have shape {got}; expected {expected}")
            parts.append(actions.to(x.dtype))
        elif actions is not None:
            raise ValueError("PixelQNetwork: actions given to a discrete Q network, which returns "
                             "the values of every action; pass actions=None")
        z = torch.cat(parts, dim=1) if len(parts) > 1 else x
        s = self.downscale
        z = pool_blocks(z, s)
        h, w = z.shape[-2:]
        z = append_cond_planes("PixelQNetwork", z, cond, self.cond_dim)
        q = self.head(self.trunk(z))
        if s > 1 and full_resolution:
            q = upsample_blocks(q, s, height, width)
        else:
            height, width = h, w
        if self.n_actions is None:
            return q
        return q.reshape(b, self.out_channels, self.n_actions, height, width)
