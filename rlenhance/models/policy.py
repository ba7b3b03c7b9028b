"""Pixel-wise actor-critic network (PixelRL / ReLLIE style), shared by training and inference.

The network is fully convolutional: for every pixel it outputs an action distribution (one per
action map, e.g. one per colour channel) and a state value. Layout::

    x (B, in_channels, H, W) [+ cond planes]
      -> (optional) average-pool by ``downscale``
      -> trunk:  conv(d=dilations[0]) + ReLU, dilated convs(d=dilations[1:]) + ReLU
      -> policy branch: dilated convs(d=branch_dilations) + ReLU [-> ConvGRU] -> policy head
      -> value branch:  dilated convs(d=branch_dilations) + ReLU -> value head
      -> (optional) bilinear upsampling of logits / means / values back to (H, W)

With ``width=64, dilations=(1, 2, 3, 4), branch_dilations=(3, 2)`` this is exactly the ReLLIE
network (307,602 parameters for ``in_channels=3, out_channels=3, n_actions=27``); adding
``conv_gru=True`` gives the PixelRL network (~486k parameters for one grey input channel and
9 actions).

What the policy sees is built in one place, :func:`build_policy_input`, used by the agents
during training and by the inference code alike.

Example:
    >>> net = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, cond_dim=5)
    >>> out = net(torch.rand(2, 6, 33, 31), cond=torch.rand(2, 5))
    >>> out.logits.shape, out.value.shape
    (torch.Size([2, 3, 27, 33, 31]), torch.Size([2, 1, 33, 31]))
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.errors import CheckpointError, ImageError

__all__ = [
    "POLICY_INPUT_KEYS",
    "ConvGRUCell",
    "ConvTrunk",
    "PixelActorCritic",
    "PolicyOutput",
    "build_policy_input",
]


#: Observation keys concatenated (in this order) into the policy input; see build_policy_input.
POLICY_INPUT_KEYS: tuple[str, ...] = ("image", "original", "mask")


class PolicyOutput(NamedTuple):
    """Per-pixel outputs of :class:`PixelActorCritic`, all at the input's full resolution.

    Attributes:
        logits: float, shape (B, out_channels, n_actions, H, W), unnormalised log-probabilities;
            ``None`` for a continuous net.
        mean: float, shape (B, out_channels, H, W), Gaussian mean, in (-1, 1) with
            ``bounded_mean=True`` (else unbounded); ``None`` for a categorical net.
        log_std: float, shape (B, out_channels, H, W), clamped to ``log_std_bounds``; ``None``
            for a categorical net.
        value: float, shape (B, 1, H, W), the per-pixel state value.
        hidden: float, shape (B, width, h, w) at the (downscaled) working resolution, the ConvGRU
            state to pass to the next step; ``None`` without ConvGRU.
    """

    logits: Tensor | None
    mean: Tensor | None
    log_std: Tensor | None
    value: Tensor
    hidden: Tensor | None


def build_policy_input(
    obs: Mapping[str, Tensor],
    keys: Sequence[str] = POLICY_INPUT_KEYS,
    cond_key: str = "cond",
) -> tuple[Tensor, Tensor | None]:
    """Concatenate the image-like observation entries the policy sees, in a fixed order.

    This is the single place that decides the policy input; agents (training) and the
    inference code call it alike. For LowLight the input is ``image`` then ``original``
    (6 channels) plus ``cond`` (B, 5); for Denoise ``image`` (1 or 3 channels); for Completion
    ``image`` then ``mask``.

    Args:
        obs: observation dict of tensors. Image entries are float, shape (B, C_k, H, W);
            ``cond`` (optional) is float, shape (B, cond_dim).
        keys: the image-like keys to use, in concatenation order; missing keys are skipped.
        cond_key: the key of the conditioning vector.

    Returns:
        ``(x, cond)``: x float of shape (B, sum C_k, H, W); cond (B, cond_dim) or ``None``.

    Raises:
        ImageError: if none of ``keys`` is present, or the entries disagree in batch or size.
    """
    parts = [obs[k] for k in keys if k in obs]
    if not parts:
        raise ImageError(
            f"build_policy_input: observation has keys {sorted(obs)}, none of the accepted "
            f"image keys {list(keys)}"
        )
    first = parts[0]
    for k, p in zip([k for k in keys if k in obs], parts):
        if p.dim() != 4 or p.shape[0] != first.shape[0] or p.shape[-2:] != first.shape[-2:]:
            raise ImageError(
                f"build_policy_input: obs[{k!r}] has shape {tuple(p.shape)}; expected "
                f"(B, C, H, W) with B, H, W = {first.shape[0]}, {tuple(first.shape[-2:])}"
            )
    x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    cond = obs.get(cond_key)
    return x, cond


def _conv(in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    """A 'same'-size convolution (odd kernel, padding = dilation * (kernel_size // 2))."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=dilation * (kernel_size // 2),
                     dilation=dilation, bias=bias)


class ConvTrunk(nn.Sequential):
    """Shared feature extractor: one conv per dilation, each followed by ReLU.

    Args:
        in_channels: input planes.
        width: feature planes of every layer (= ``out_channels``).
        dilations: dilation of each 3x3 layer; the first maps ``in_channels -> width``.
        kernel_size: odd kernel size.

    Shape:
        (B, in_channels, H, W) -> (B, width, H, W).
    """

    def __init__(self, in_channels: int, width: int, dilations: Sequence[int], kernel_size: int = 3):
        layers: list[nn.Module] = []
        ch = in_channels
        for d in dilations:
            layers += [_conv(ch, width, kernel_size, d), nn.ReLU(inplace=True)]
            ch = width
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = width


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell (PixelRL keeps one in its policy branch).

    ``z, r = sigmoid(W_zr x + U_zr h)``, ``n = tanh(W_n x + U_n (r * h))``,
    ``h' = (1 - z) * h + z * n``.

    Args:
        channels: planes of both the input and the hidden state.
        kernel_size: odd kernel size of the six gate convolutions.

    Shape:
        x, h: (B, channels, H, W) -> h': (B, channels, H, W).
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.x_zr = _conv(channels, 2 * channels, kernel_size)
        self.h_zr = _conv(channels, 2 * channels, kernel_size, bias=False)
        self.x_n = _conv(channels, channels, kernel_size)
        self.h_n = _conv(channels, channels, kernel_size, bias=False)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        z, r = torch.sigmoid(self.x_zr(x) + self.h_zr(h)).chunk(2, dim=1)
        n = torch.tanh(self.x_n(x) + self.h_n(r * h))
        return (1 - z) * h + z * n


class PixelActorCritic(nn.Module):
    """Fully convolutional per-pixel actor-critic (PixelRL / ReLLIE network).

    Args:
        in_channels: image planes of the policy input (see :func:`build_policy_input`),
            not counting ``cond_dim``.
        out_channels: number of action maps (3 for per-channel LowLight, 1 for Denoise).
        n_actions: number of discrete actions per pixel (categorical heads), or ``None`` for
            continuous Gaussian heads.
        width: feature planes (ReLLIE / PixelRL use 64).
        dilations: dilations of the trunk convolutions (the first is the input conv).
        branch_dilations: dilations of the convolutions of each of the policy / value branches.
        kernel_size: odd kernel size of every convolution.
        conv_gru: put a ConvGRU (state carried across steps) at the end of the policy branch.
        downscale: s >= 1; the net runs on the input average-pooled by s (partial border blocks
            averaged over their valid pixels) and its outputs are upsampled bilinearly back to
            (H, W), so a pass costs about 1/s^2 of a full-resolution one.
        cond_dim: number of conditioning values, broadcast as constant input planes (0 = none).
        log_std_bounds: (min, max) clamp of the Gaussian log standard deviation.
        policy_head_gain: the policy head's initial weights are scaled by this factor (and its
            biases zeroed) so the initial policy is near-uniform / near-zero-mean.
        bounded_mean: continuous heads only: the mean is ``tanh`` of the head output, so it lies
            in the (-1, 1) action Box the envs use (A3C samples around it and clips). Use False
            for a tanh-squashed Gaussian (SAC), whose mean lives before the squashing.

    Shape:
        x: float (B, in_channels, H, W); cond: float (B, cond_dim); hidden: (B, width, h, w)
        with h = ceil(H / downscale), w = ceil(W / downscale).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_actions: int | None,
        width: int = 32,
        dilations: Sequence[int] = (1, 2, 3, 4),
        branch_dilations: Sequence[int] = (3, 2),
        kernel_size: int = 3,
        conv_gru: bool = False,
        downscale: int = 1,
        cond_dim: int = 0,
        log_std_bounds: Sequence[float] = (-5.0, 2.0),
        policy_head_gain: float = 0.1,
        bounded_mean: bool = True,
    ):
        super().__init__()
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels),
                          ("width", width), ("downscale", downscale)):
            if int(val) != val or val < 1:
                raise ValueError(f"PixelActorCritic: {name}={val!r}; expected an integer >= 1")
        if n_actions is not None and (int(n_actions) != n_actions or n_actions < 2):
            raise ValueError(f"PixelActorCritic: n_actions={n_actions!r}; expected an integer >= 2 "
                             "(categorical) or None (continuous)")
        if int(cond_dim) != cond_dim or cond_dim < 0:
            raise ValueError(f"PixelActorCritic: cond_dim={cond_dim!r}; expected an integer >= 0")
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(f"PixelActorCritic: kernel_size={kernel_size!r}; expected an odd integer")
        if len(dilations) < 1 or any(int(d) != d or d < 1 for d in (*dilations, *branch_dilations)):
            raise ValueError(
                f"PixelActorCritic: dilations={list(dilations)}, branch_dilations="
                f"{list(branch_dilations)}; expected non-empty / possibly empty lists of integers >= 1"
            )
        lo, hi = (float(v) for v in log_std_bounds)
        if not lo < hi:
            raise ValueError(f"PixelActorCritic: log_std_bounds={list(log_std_bounds)}; expected min < max")

        self._kwargs: dict[str, Any] = dict(
            in_channels=int(in_channels), out_channels=int(out_channels),
            n_actions=None if n_actions is None else int(n_actions), width=int(width),
            dilations=[int(d) for d in dilations], branch_dilations=[int(d) for d in branch_dilations],
            kernel_size=int(kernel_size), conv_gru=bool(conv_gru), downscale=int(downscale),
            cond_dim=int(cond_dim), log_std_bounds=[lo, hi], policy_head_gain=float(policy_head_gain),
            bounded_mean=bool(bounded_mean),
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.n_actions = self._kwargs["n_actions"]
        self.width = int(width)
        self.downscale = int(downscale)
        self.cond_dim = int(cond_dim)
        self.log_std_bounds = (lo, hi)
        self.bounded_mean = bool(bounded_mean)

        self.trunk = ConvTrunk(self.in_channels + self.cond_dim, self.width, dilations, kernel_size)
        feat = self.trunk.out_channels
        def branch() -> nn.Module:
            return ConvTrunk(feat, self.width, branch_dilations, kernel_size) if branch_dilations else nn.Identity()

        self.policy_branch = branch()
        self.value_branch = branch()
        branch_out = self.width if branch_dilations else feat
        self.gru = ConvGRUCell(branch_out, kernel_size) if conv_gru else None
        per_pixel = self.n_actions if self.n_actions is not None else 2  # (mean, log_std)
        self.policy_head = _conv(branch_out, self.out_channels * per_pixel, kernel_size)
        self.value_head = _conv(branch_out, 1, kernel_size)
        with torch.no_grad():
            self.policy_head.weight.mul_(policy_head_gain)
            self.policy_head.bias.zero_()

    def arch(self) -> dict[str, Any]:
        """The architecture as a JSON-able dict ``{"class": ..., "kwargs": {...}}`` for checkpoints."""
        return {"class": type(self).__name__, "kwargs": {k: (list(v) if isinstance(v, list) else v)
                                                         for k, v in self._kwargs.items()}}

    @classmethod
    def from_arch(cls, arch: Mapping[str, Any]) -> "PixelActorCritic":
        """Rebuild an (untrained) network from :meth:`arch` output.

        Raises:
            CheckpointError: if the class name or the kwargs do not fit.
        """
        if arch.get("class") != cls.__name__:
            raise CheckpointError(f"arch class is {arch.get('class')!r}; expected {cls.__name__!r}")
        try:
            return cls(**dict(arch.get("kwargs", {})))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"arch kwargs {arch.get('kwargs')!r} do not build a {cls.__name__}: {exc}") from exc

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the trunk sees for an (height, width) input: ceil(size / downscale)."""
        s = self.downscale
        return -(-height // s), -(-width // s)

    def initial_hidden(self, batch: int, height: int, width: int, device=None, dtype=None) -> Tensor | None:
        """Zero ConvGRU state for a (height, width) input, shape (batch, width, h, w); None without GRU."""
        if self.gru is None:
            return None
        h, w = self.working_size(height, width)
        return torch.zeros(batch, self.width, h, w, device=device, dtype=dtype)

    def forward(self, x: Tensor, cond: Tensor | None = None, hidden: Tensor | None = None,
                full_resolution: bool = True) -> PolicyOutput:
        """Per-pixel action distributions and values.

        Args:
            x: float, shape (B, in_channels, H, W) (any H, W >= 1).
            cond: float, shape (B, cond_dim), required iff ``cond_dim > 0``.
            hidden: ConvGRU state from the previous step, shape (B, width, h, w); ``None`` = zeros.
            full_resolution: upsample the outputs to (H, W); False keeps them at the working
                resolution (h, w) = ceil(H / downscale, W / downscale), one per block of pixels.

        Returns:
            :class:`PolicyOutput` at full resolution (H, W), or (h, w) with ``full_resolution=False``.

        Raises:
            ImageError: x has the wrong rank or channel count.
            ValueError: cond or hidden has the wrong shape.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ImageError(f"PixelActorCritic: x has shape {tuple(x.shape)}; expected "
                             f"(B, {self.in_channels}, H, W)")
        b, _, height, width = x.shape
        s = self.downscale
        z = F.avg_pool2d(x, s, ceil_mode=True) if s > 1 else x
        h, w = z.shape[-2:]
        if self.cond_dim:
            if cond is None or tuple(cond.shape) != (b, self.cond_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"PixelActorCritic: cond has shape {got}; expected ({b}, {self.cond_dim})")
            z = torch.cat([z, cond.to(z.dtype)[:, :, None, None].expand(b, self.cond_dim, h, w)], dim=1)
        elif cond is not None:
            raise ValueError(f"PixelActorCritic: cond of shape {tuple(cond.shape)} given to a net with "
                             "cond_dim=0; build it with cond_dim=<number of values>")

        feat = self.trunk(z)
        p = self.policy_branch(feat)
        new_hidden = None
        if self.gru is not None:
            if hidden is None:
                hidden = torch.zeros(b, p.shape[1], h, w, device=p.device, dtype=p.dtype)
            elif tuple(hidden.shape) != (b, p.shape[1], h, w):
                raise ValueError(f"PixelActorCritic: hidden has shape {tuple(hidden.shape)}; expected "
                                 f"{(b, p.shape[1], h, w)} (ceil of H, W / downscale={s})")
            new_hidden = self.gru(p, hidden)
            p = new_hidden
        pol = self.policy_head(p)
        value = self.value_head(self.value_branch(feat))
        if s > 1 and full_resolution:
            pol = self.upsample(pol, height, width)
            value = self.upsample(value, height, width)
        else:
            height, width = h, w

        if self.n_actions is not None:
            logits = pol.reshape(b, self.out_channels, self.n_actions, height, width)
            return PolicyOutput(logits, None, None, value, new_hidden)
        mean, log_std = pol.reshape(b, self.out_channels, 2, height, width).unbind(dim=2)
        log_std = log_std.clamp(*self.log_std_bounds)
        if self.bounded_mean:
            mean = torch.tanh(mean)
        return PolicyOutput(None, mean, log_std, value, new_hidden)

    def upsample(self, t: Tensor, height: int, width: int) -> Tensor:
        """Bilinear upsampling of a working-resolution map by ``downscale`` (block centres kept in
        place), cropped to (H, W): how the net's own outputs reach full resolution."""
        s = self.downscale
        up = F.interpolate(t, size=(t.shape[-2] * s, t.shape[-1] * s), mode="bilinear", align_corners=False)
        return up[..., :height, :width]
