"""The trunks of the per-pixel policy (:class:`rlenhance.models.policy.PixelActorCritic`) and the checks,
conditioning planes, pooling and upsampling that the policy and the critic share."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.errors import ImageError

__all__ = ["BACKBONES", "ConvGRUCell", "ConvTrunk", "SupervisedTrunk", "append_cond_planes", "backbone_class",
           "check_net_args", "check_planes", "pool_blocks", "upsample_blocks"]

#: Trunks a PixelActorCritic can be built with (its ``backbone`` argument).
BACKBONES: tuple[str, ...] = ("fcn", "mrpnet", "pixelrnn")
#: Constructor arguments of the supervised nets set through dedicated PixelActorCritic arguments.
_RESERVED_BACKBONE_KWARGS = ("in_channels", "width", "channels")


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


def backbone_class(backbone: str, mask: bool = False) -> type[nn.Module]:
    """The supervised network class a backbone name stands for.

    Args:
        backbone: ``"mrpnet"`` or ``"pixelrnn"``.
        mask: the backbone reads a mask plane too (only ``"pixelrnn"``: the gated PixelRNN).

    Returns:
        :class:`~rlenhance.models.mrpnet.MRPNet`, :class:`~rlenhance.models.pixelrnn.GatedPixelRNN`
        (``pixelrnn`` with mask) or :class:`~rlenhance.models.pixelrnn.PixelRNN`.

    Raises:
        ValueError: an unknown name, or a mask for ``"mrpnet"``.
    """
    if backbone == "mrpnet":
        if mask:
            raise ValueError("backbone='mrpnet' reads no mask plane; use backbone='pixelrnn' (gated PixelRNN) "
                             "or backbone_mask=False")
        from rlenhance.models.mrpnet import MRPNet
        return MRPNet
    if backbone == "pixelrnn":
        from rlenhance.models.pixelrnn import GatedPixelRNN, PixelRNN
        return GatedPixelRNN if mask else PixelRNN
    raise ValueError(f"backbone={backbone!r}; expected one of {[b for b in BACKBONES if b != 'fcn']} "
                     "for a supervised backbone")


class SupervisedTrunk(nn.Module):
    """Trunk around a supervised network's feature extractor, fused with the remaining planes.

    The other input planes and the cond planes are concatenated to the network's ``features`` and mixed
    by a fresh 1x1 convolution + ReLU; the network's output convolution (``head``) is removed.

    Args:
        net: the supervised network (MRPNet, PixelRNN or GatedPixelRNN); it has ``features``,
            ``in_channels`` (image planes) and ``out_channels`` (feature planes).
        in_channels: planes of the policy input ``x`` (not counting cond planes).
        cond_dim: constant cond planes appended after ``x``.
        width: planes of the output.
        mask: ``net.features(image, mask)`` reads the last plane of ``x`` as the mask.

    Shape:
        z = cat(x, cond planes), float (B, in_channels + cond_dim, H, W) -> (B, width, H, W),
        values >= 0. ``x[:, :net.in_channels]`` are the image planes; with ``mask``,
        ``x[:, in_channels - 1]`` is the mask (1 = missing pixel).
    """

    def __init__(self, net: nn.Module, in_channels: int, cond_dim: int, width: int, mask: bool = False):
        super().__init__()
        image = int(net.in_channels)
        if image + int(mask) > in_channels:
            raise ValueError(f"SupervisedTrunk: the backbone reads {image} image plane(s)"
                             f"{' and a mask' if mask else ''} but the input has only {in_channels}")
        net.head = None  # the supervised output convolution: the policy has its own heads
        self.net = net
        self.image_channels, self.mask = image, bool(mask)
        self.x_channels, self.cond_dim = int(in_channels), int(cond_dim)
        #: Planes concatenated to the features: the unused planes of x, then the cond planes.
        self.extra_channels = self.x_channels - image - int(mask) + self.cond_dim
        self.fuse = nn.Conv2d(int(net.out_channels) + self.extra_channels, width, 1)
        self.in_channels = self.x_channels + self.cond_dim
        self.out_channels = int(width)

    def forward(self, z: Tensor) -> Tensor:
        image = z[:, :self.image_channels]
        if self.mask:
            mask_at = self.x_channels - 1
            feat = self.net.features(image, z[:, mask_at:mask_at + 1])
            rest = torch.cat([z[:, self.image_channels:mask_at], z[:, self.x_channels:]], dim=1)
        else:
            feat = self.net.features(image)
            rest = z[:, self.image_channels:]
        if rest.shape[1]:
            feat = torch.cat([feat, rest.to(feat.dtype)], dim=1)
        return F.relu(self.fuse(feat))


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


def check_net_args(owner: str, *, in_channels: int, out_channels: int, width: int, downscale: int,
                   n_actions: int | None, cond_dim: int, kernel_size: int, dilations: Sequence[int],
                   branch_dilations: Sequence[int] = ()) -> None:
    """Validate the constructor arguments shared by the per-pixel networks (policy, Q critic).

    Raises:
        ValueError: naming ``owner``, the argument, its value and what is accepted.
    """
    for name, val in (("in_channels", in_channels), ("out_channels", out_channels),
                      ("width", width), ("downscale", downscale)):
        if int(val) != val or val < 1:
            raise ValueError(f"{owner}: {name}={val!r}; expected an integer >= 1")
    if n_actions is not None and (int(n_actions) != n_actions or n_actions < 2):
        raise ValueError(f"{owner}: n_actions={n_actions!r}; expected an integer >= 2 "
                         "(discrete) or None (continuous)")
    if int(cond_dim) != cond_dim or cond_dim < 0:
        raise ValueError(f"{owner}: cond_dim={cond_dim!r}; expected an integer >= 0")
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"{owner}: kernel_size={kernel_size!r}; expected an odd integer >= 1")
    if len(dilations) < 1 or any(int(d) != d or d < 1 for d in (*dilations, *branch_dilations)):
        raise ValueError(f"{owner}: dilations={list(dilations)}, branch_dilations={list(branch_dilations)}; "
                         "expected a non-empty list and a possibly empty list of integers >= 1")


def check_planes(owner: str, x: Tensor, in_channels: int) -> None:
    """Raise :class:`ImageError` naming ``owner`` unless ``x`` has shape (B, ``in_channels``, H, W)."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ImageError(f"{owner}: x has shape {tuple(x.shape)}; expected (B, {in_channels}, H, W)")


def pool_blocks(x: Tensor, scale: int) -> Tensor:
    """``x`` (B, C, H, W) average-pooled by ``scale`` to (ceil(H / scale), ceil(W / scale)); ``x`` itself for 1."""
    return F.avg_pool2d(x, scale, ceil_mode=True) if scale > 1 else x


def upsample_blocks(t: Tensor, scale: int, height: int, width: int) -> Tensor:
    """Bilinear upsampling of a working-resolution map by ``scale``, cropped to (``height``, ``width``)."""
    up = F.interpolate(t, size=(t.shape[-2] * scale, t.shape[-1] * scale), mode="bilinear", align_corners=False)
    return up[..., :height, :width]


def append_cond_planes(owner: str, z: Tensor, cond: Tensor | None, cond_dim: int) -> Tensor:
    """``z`` (B, C, h, w) with the conditioning values broadcast as ``cond_dim`` constant planes.

    Raises:
        ValueError: ``cond`` is missing or misshapen for a conditioned net, or given to one with
            ``cond_dim=0`` (the message names ``owner``).
    """
    b, _, h, w = z.shape
    if cond_dim:
        if cond is None or tuple(cond.shape) != (b, cond_dim):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"{owner}: cond has shape {got}; expected ({b}, {cond_dim})")
        return torch.cat([z, cond.to(z.dtype)[:, :, None, None].expand(b, cond_dim, h, w)], dim=1)
    if cond is not None:
        raise ValueError(f"{owner}: cond of shape {tuple(cond.shape)} given to a net with "
                         "cond_dim=0; build it with cond_dim=<number of values>")
    return z
