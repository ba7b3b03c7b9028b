"""Re-implementations of peer low-light enhancers, to run their official weights side by side.

Written from the papers and the documented weight layouts (``../shared/README.md``); the
official weights are read from wherever the user keeps them and are never shipped.

* :class:`ZeroDCE` (Guo et al., CVPR 2020), :func:`load_zero_dce`.
* :class:`ZeroDCEPP` (Li et al., TPAMI 2021), :func:`load_zero_dcepp`.
* :class:`ReLLIENet` (Zhang et al., ACM MM 2021): :func:`load_rellie` reads the released Chainer ``.npz``;
  :func:`rellie_enhance` runs the deterministic test-time rollout.

Curve sign convention: everything here returns ``alpha`` in the convention of
:func:`rlenhance.ops.curves.le_curve`, ``LE(x) = x + alpha * x * (1 - x)``. The Zero-DCE code
writes ``x + r * (x**2 - x)`` with ``r = tanh(...)``, so ``alpha = -r``.

All models take RGB float images in [0, 1], shape (B, 3, H, W), on any device. The loaders zero
denormal weights (``flush_subnormals=True``), which are very slow on some CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.checkpoint import check_finite, load_state_dict_strict, read_npz, read_torch_file
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.ops.curves import le_curve, le_curve_iterative

__all__ = ["RELLIE_NPZ_KEYS", "ReLLIENet", "ZeroDCE", "ZeroDCEPP", "load_rellie", "load_zero_dce", "load_zero_dcepp",
           "rellie_enhance"]


def _check_rgb(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ImageError(f"{who}: expected an RGB float tensor of shape (B, 3, H, W) with values in [0, 1]; "
                         f"got {got}")


def _zero_subnormals(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace subnormal (denormal) float values by 0; other values and tensors are unchanged."""
    out = {}
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            tiny = torch.finfo(value.dtype).tiny
            value = torch.where(value.abs() < tiny, torch.zeros_like(value), value)
        out[name] = value
    return out


# --- Zero-DCE ---------------------------------------------------------------------------------
def _dce_body(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The seven-layer Zero-DCE topology (``net.e_conv1..7``) shared by Zero-DCE and Zero-DCE++."""
    x1 = F.relu(net.e_conv1(x))
    x2 = F.relu(net.e_conv2(x1))
    x3 = F.relu(net.e_conv3(x2))
    x4 = F.relu(net.e_conv4(x3))
    x5 = F.relu(net.e_conv5(torch.cat([x3, x4], dim=1)))
    x6 = F.relu(net.e_conv6(torch.cat([x2, x5], dim=1)))
    return torch.tanh(net.e_conv7(torch.cat([x1, x6], dim=1)))


def _add_dce_layers(net: nn.Module, conv: Any, width: int, out_planes: int) -> None:
    """Set ``net.e_conv1..7`` of the Zero-DCE topology, each built by ``conv(in_planes, out_planes)``."""
    sizes = [(3, width)] + [(width, width)] * 3 + [(2 * width, width)] * 2 + [(2 * width, out_planes)]
    for i, (a, b) in enumerate(sizes, 1):
        setattr(net, f"e_conv{i}", conv(a, b))


class ZeroDCE(nn.Module):
    """Zero-DCE curve estimator (Guo et al., CVPR 2020) with the official layer names.

    Seven 3x3 convolutions (stride 1, padding 1, bias) with ReLU, ``width`` channels::

        x1 = conv1(x)            3 -> w          x5 = conv5([x3, x4])   2w -> w
        x2 = conv2(x1)           w -> w          x6 = conv6([x2, x5])   2w -> w
        x3 = conv3(x2)           w -> w          r  = tanh(conv7([x1, x6]))   2w -> 3 n_iter
        x4 = conv4(x3)           w -> w

    ``r`` is split into ``n_iter`` 3-channel maps applied in order as
    ``x <- x + r_t * (x^2 - x)`` = :func:`le_curve` with ``alpha_t = -r_t``.

    Args:
        width: Feature channels of the hidden layers (official: 32).
        n_iter: Number of curve steps (official: 8).

    Example:
        >>> net = ZeroDCE()
        >>> enhanced, alpha = net(torch.rand(1, 3, 32, 32))
        >>> tuple(alpha.shape)
        (1, 24, 32, 32)
    """

    def __init__(self, *, width: int = 32, n_iter: int = 8) -> None:
        super().__init__()
        self.width = width
        self.n_iter = n_iter
        _add_dce_layers(self, lambda a, b: nn.Conv2d(a, b, 3, padding=1), width, 3 * n_iter)

    def arch(self) -> dict[str, Any]:
        """``{"class": "ZeroDCE", "kwargs": {...}}`` for :func:`rlenhance.checkpoint.save_checkpoint`."""
        return {"class": type(self).__name__, "kwargs": {"width": self.width, "n_iter": self.n_iter}}

    def curve_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The curve parameters ``alpha`` (our sign), shape (B, 3 n_iter, H, W), in [-1, 1]."""
        return -_dce_body(self, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Enhance a batch.

        Args:
            x: RGB float tensor, shape (B, 3, H, W), values in [0, 1].

        Returns:
            ``(enhanced, alpha)``: enhanced image, shape (B, 3, H, W), in [0, 1]; curve maps
            ``alpha`` (our sign, ``alpha = -r``), shape (B, 3 n_iter, H, W), in [-1, 1], map ``t``
            in channels ``3t..3t+2``.

        Raises:
            ImageError: ``x`` is not a (B, 3, H, W) float tensor.
        """
        _check_rgb(x, type(self).__name__)
        alpha = self.curve_maps(x)
        return le_curve_iterative(x, alpha, n_iter=self.n_iter), alpha


# --- Zero-DCE++ -------------------------------------------------------------------------------
class _SeparableConv(nn.Module):
    """3x3 depthwise conv (groups = in channels, bias) followed by a 1x1 pointwise conv (bias)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.point_conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class ZeroDCEPP(nn.Module):
    """Zero-DCE++ (Li et al., TPAMI 2021) with the official layer names.

    Same topology as :class:`ZeroDCE`, each 3x3 conv replaced by a depthwise 3x3 + pointwise 1x1
    pair (``e_convK.depth_conv``, ``e_convK.point_conv``); the last layer outputs one 3-channel
    map ``r``, estimated on ``x`` downscaled bilinearly by ``scale_factor``, upsampled back to (H, W)
    (``align_corners=True``) and used for all ``n_iter`` steps (:func:`le_curve` with ``alpha = -r``).
    Unlike the official test script, H and W are not cropped to multiples of 12.

    Args:
        width: Feature channels of the hidden layers (official: 32).
        n_iter: Number of curve steps (official: 8).
        scale_factor: Integer downscaling factor for curve estimation (official: 12).
    """

    def __init__(self, *, width: int = 32, n_iter: int = 8, scale_factor: int = 12) -> None:
        super().__init__()
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
            raise ValueError(f"ZeroDCEPP: scale_factor must be a positive int; got {scale_factor!r}")
        self.width = width
        self.n_iter = n_iter
        self.scale_factor = scale_factor
        _add_dce_layers(self, _SeparableConv, width, 3)

    def arch(self) -> dict[str, Any]:
        """``{"class": "ZeroDCEPP", "kwargs": {...}}`` for :func:`rlenhance.checkpoint.save_checkpoint`."""
        return {"class": type(self).__name__,
                "kwargs": {"width": self.width, "n_iter": self.n_iter, "scale_factor": self.scale_factor}}

    def curve_map(self, x: torch.Tensor) -> torch.Tensor:
        """The shared curve parameter ``alpha`` (our sign) at full size, shape (B, 3, H, W), in [-1, 1]."""
        height, width = x.shape[-2:]
        s = self.scale_factor
        if s > 1:
            if height < s or width < s:
                raise ImageError(f"ZeroDCEPP: image of size {height}x{width} is smaller than scale_factor={s} "
                                 f"in a dimension; use images of at least {s}x{s} or a smaller scale_factor")
            x = F.interpolate(x, scale_factor=1.0 / s, mode="bilinear", align_corners=False)
        r = _dce_body(self, x)
        if s > 1:
            r = F.interpolate(r, size=(height, width), mode="bilinear", align_corners=True)
        return -r

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Enhance a batch.

        Args:
            x: RGB float tensor, shape (B, 3, H, W), values in [0, 1]; H, W >= ``scale_factor``.

        Returns:
            ``(enhanced, alpha)``: enhanced image, shape (B, 3, H, W), in [0, 1]; the shared
            curve map ``alpha`` (our sign), shape (B, 3, H, W), in [-1, 1].

        Raises:
            ImageError: ``x`` is not a (B, 3, H, W) float tensor, or is smaller than ``scale_factor``.
        """
        _check_rgb(x, type(self).__name__)
        alpha = self.curve_map(x)
        return le_curve_iterative(x, alpha, n_iter=self.n_iter), alpha


def _load_official_torch(model: nn.Module, path: str | os.PathLike, map_location: Any,
                         flush_subnormals: bool) -> nn.Module:
    path = Path(path)
    state_dict = read_torch_file(path, map_location=map_location)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected an official {type(model).__name__} state_dict "
                              f"(a dict of tensors); got {type(state_dict).__name__}")
    check_finite(state_dict, source=f"checkpoint {path}")
    if flush_subnormals:
        state_dict = _zero_subnormals(state_dict)
    load_state_dict_strict(model, state_dict, source=f"checkpoint {path}")
    return model.eval()


def load_zero_dce(path: str | os.PathLike, *, map_location: Any = "cpu",
                  flush_subnormals: bool = True) -> ZeroDCE:
    """Build a :class:`ZeroDCE` from the official ``Epoch99.pth`` state_dict (strict).

    Args:
        path: The official weights file (a bare state_dict saved from CUDA).
        map_location: Where to load the tensors (default CPU).
        flush_subnormals: Zero denormal weights (faster on CPUs with a denormal penalty).

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: the file is missing/unreadable, holds NaN/inf, or its keys/shapes do not fit.
    """
    return _load_official_torch(ZeroDCE(), path, map_location, flush_subnormals)


def load_zero_dcepp(path: str | os.PathLike, *, map_location: Any = "cpu", flush_subnormals: bool = True,
                    scale_factor: int = 12) -> ZeroDCEPP:
    """Build a :class:`ZeroDCEPP` from the official Zero-DCE++ ``Epoch99.pth`` state_dict (strict).

    Args:
        path: The official weights file.
        map_location: Where to load the tensors (default CPU).
        flush_subnormals: Zero denormal weights (see :func:`load_zero_dce`).
        scale_factor: Downscaling for curve estimation (official test setting: 12).

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: the file is missing/unreadable, holds NaN/inf, or does not fit.
    """
    return _load_official_torch(ZeroDCEPP(scale_factor=scale_factor), path, map_location, flush_subnormals)


# --- ReLLIE ------------------------------------------------------------------------------------
class _DilatedConvBlock(nn.Module):
    """ReLU(3x3 conv with dilation d and padding d); keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class ReLLIENet(nn.Module):
    """ReLLIE's actor-critic (PixelRL's FCN without ConvGRU), as released with ReLLIE.

    Layers (all 3x3, padding = dilation, bias, ReLU after every layer but the outputs)::

        conv1            in_channels -> width
        trunk            width -> width, dilations 2, 3, 4           (shared)
        policy_branch    width -> width, dilations 3, 2
        policy_heads[c]  width -> n_actions, one head per image channel c
        value_branch     width -> width, dilations 3, 2
        value_head       width -> 1

    Channel order: the released weights were trained on images read with OpenCV and never
    converted, so **the network works in BGR**: head ``c`` acts on channel ``c`` of its input,
    and the official "r" head (``policy_heads[0]``) acts on blue. :func:`rellie_enhance` takes
    RGB and does the conversion; call the network directly only with BGR input.

    Args:
        in_channels: Image channels (3).
        width: Feature channels (64).
        n_actions: Discrete actions per pixel and channel (27).
        trunk_dilations: Dilations of the shared trunk.
        branch_dilations: Dilations of the policy and of the value branch.
    """

    def __init__(self, *, in_channels: int = 3, width: int = 64, n_actions: int = 27,
                 trunk_dilations: Sequence[int] = (2, 3, 4), branch_dilations: Sequence[int] = (3, 2)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.width = width
        self.n_actions = n_actions
        self.trunk_dilations = tuple(trunk_dilations)
        self.branch_dilations = tuple(branch_dilations)
        self.conv1 = _DilatedConvBlock(in_channels, width, 1)
        self.trunk = nn.Sequential(*[_DilatedConvBlock(width, width, d) for d in self.trunk_dilations])
        self.policy_branch = nn.Sequential(*[_DilatedConvBlock(width, width, d) for d in self.branch_dilations])
        self.policy_heads = nn.ModuleList([nn.Conv2d(width, n_actions, 3, padding=1) for _ in range(in_channels)])
        self.value_branch = nn.Sequential(*[_DilatedConvBlock(width, width, d) for d in self.branch_dilations])
        self.value_head = nn.Conv2d(width, 1, 3, padding=1)

    def arch(self) -> dict[str, Any]:
        """``{"class": "ReLLIENet", "kwargs": {...}}`` for :func:`rlenhance.checkpoint.save_checkpoint`."""
        return {"class": type(self).__name__, "kwargs": {
            "in_channels": self.in_channels, "width": self.width, "n_actions": self.n_actions,
            "trunk_dilations": list(self.trunk_dilations), "branch_dilations": list(self.branch_dilations)}}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel action logits and state values.

        Args:
            x: Current state image in the **network's channel order (BGR for the released
               weights)**, float, shape (B, in_channels, H, W), values in [0, 1].

        Returns:
            ``(logits, value)``: ``logits`` of shape (B, in_channels, n_actions, H, W), where
            ``logits[:, c]`` are the unnormalised log-probabilities of the actions for input
            channel ``c``; ``value`` of shape (B, 1, H, W).

        Raises:
            ImageError: ``x`` is not a float tensor of shape (B, in_channels, H, W).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels \
                or not x.is_floating_point():
            got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ImageError(f"ReLLIENet: expected a float tensor of shape (B, {self.in_channels}, H, W); got {got}")
        h = self.trunk(self.conv1(x))
        h_pi = self.policy_branch(h)
        logits = torch.stack([head(h_pi) for head in self.policy_heads], dim=1)
        value = self.value_head(self.value_branch(h))
        return logits, value


def _rellie_key_map() -> dict[str, str]:
    """Chainer npz array name -> our state_dict name, for the released layer names."""
    pairs = {"conv1": "conv1.conv", "conv7_V": "value_head"}
    for i in range(3):
        pairs[f"diconv{i + 2}/diconv"] = f"trunk.{i}.conv"
    for i, k in enumerate((5, 6)):
        pairs[f"diconv{k}_pi/diconv"] = f"policy_branch.{i}.conv"
        pairs[f"diconv{k}_V/diconv"] = f"value_branch.{i}.conv"
    for i, c in enumerate("rgb"):
        pairs[f"conv7_{c}_pi/model"] = f"policy_heads.{i}"
    mapping = {}
    for chainer_name, torch_name in pairs.items():
        mapping[f"{chainer_name}/W"] = f"{torch_name}.weight"
        mapping[f"{chainer_name}/b"] = f"{torch_name}.bias"
    return mapping


RELLIE_NPZ_KEYS = tuple(sorted(_rellie_key_map()))
"""The 24 array names of the released ReLLIE ``model.npz`` (Chainer ``save_npz`` layout)."""


def load_rellie(path: str | os.PathLike, *, flush_subnormals: bool = True) -> ReLLIENet:
    """Build a :class:`ReLLIENet` from the released Chainer ``model.npz`` (strict).

    Args:
        path: The released ``.npz`` (read by :func:`rlenhance.checkpoint.read_npz`, no pickles).
        flush_subnormals: Zero denormal weights (see :func:`load_zero_dce`).

    Returns:
        The network in eval mode, on CPU, in the network's BGR channel order (see :class:`ReLLIENet`).

    Raises:
        CheckpointError: (names the file) missing file, not an npz / corrupt, missing or
            unexpected arrays, wrong shapes, NaN/inf values.
    """
    path = Path(path)
    mapping = _rellie_key_map()
    net = ReLLIENet()
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    arrays = read_npz(path, {chainer: shapes[ours] for chainer, ours in mapping.items()}, source=f"checkpoint {path}",
                      layout="the released ReLLIE layout")
    tensors = {name: torch.from_numpy(arrays[name].astype(np.float32, copy=False)) for name in sorted(arrays)}
    check_finite(tensors, source=f"checkpoint {path}")
    state_dict = {mapping[name]: tensor for name, tensor in tensors.items()}
    if flush_subnormals:
        state_dict = _zero_subnormals(state_dict)
    load_state_dict_strict(net, state_dict, source=f"checkpoint {path}")
    return net.eval()


@torch.no_grad()
def rellie_enhance(net: ReLLIENet, x: torch.Tensor, *, steps: int = 6, neutral_action: int = 6,
                   action_scale: float = 20.0, coupling: float = 0.9, damping: float = 0.8,
                   bgr_network: bool = True) -> torch.Tensor:
    """ReLLIE's deterministic test-time rollout (enhancement without the FFDNet denoiser).

    With ``s`` the state in the network's channel order (BGR; ``s_0`` = the input), each of the
    ``steps`` steps does:

    1. ``a = argmax(logits(s))`` per pixel and channel (first maximum on ties), a in 0..26;
    2. ``m = (a - neutral_action) / action_scale`` (-0.30 .. +1.00 by default);
    3. channel coupling: ``alpha_0 = m_0``, ``alpha_c = coupling * m_0 + (1 - coupling) * m_c`` for c = 1, 2;
    4. damped curve step ``s <- damping * LE(s; alpha) + (1 - damping) * s``.

    The result is converted back to RGB and clamped to [0, 1].

    Args:
        net: A :class:`ReLLIENet` (e.g. from :func:`load_rellie`), on the device of ``x``.
        x: RGB float tensor, shape (B, 3, H, W), values in [0, 1].
        steps: Episode length (official test setting 6; more steps brighten more).
        neutral_action: The action index meaning "no change" (6).
        action_scale: Divisor turning action offsets into curve parameters (20).
        coupling: Weight of channel 0's action in channels 1 and 2 (0.9).
        damping: Weight of the curve output in the state update (0.8).
        bgr_network: True for the released weights (network in BGR order); False for a network
            trained on RGB input, which then gets ``x`` as is (coupling still on its channel 0).

    Returns:
        Enhanced RGB image, shape (B, 3, H, W), float in [0, 1], same dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a (B, 3, H, W) float tensor.
        ValueError: ``steps`` is negative or ``net`` does not have 3 input channels.
    """
    _check_rgb(x, "rellie_enhance")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"rellie_enhance: steps must be an int >= 0; got {steps!r}")
    if getattr(net, "in_channels", 3) != 3:
        raise ValueError(f"rellie_enhance: net must take 3 channels; got in_channels={net.in_channels}")
    order = [2, 1, 0] if bgr_network else [0, 1, 2]
    state = x[:, order]
    for _ in range(steps):
        logits, _ = net(state)
        moves = (logits.argmax(dim=2).to(state.dtype) - neutral_action) / action_scale
        base = moves[:, :1]
        alpha = torch.cat([base, coupling * base + (1.0 - coupling) * moves[:, 1:]], dim=1)
        state = damping * le_curve(state, alpha) + (1.0 - damping) * state
    return state[:, order].clamp(0.0, 1.0)
