"""A coarse residual U-Net for large holes: the third supervised completion model.

A large hole's PSNR rewards its low-frequency content, which needs context from far outside the hole,
so :class:`CompletionUNet` predicts a correction to the pre-fill on a ``scale``-times smaller grid::

    [image, mask] -> avg_pool(scale)
      -> levels x [conv3x3 + ReLU, conv3x3 + ReLU] (width * 2**k planes), max_pool(2) after each
      -> bottleneck: conv3x3, conv3x3 dilation 2, conv3x3 dilation 4 (2x the last level's planes), conv3x3
      -> levels x [bilinear x2, concat the level's skip, conv3x3 + ReLU, conv3x3 + ReLU]
      -> conv3x3 (zero-initialised) = correction
      -> bilinear x scale;  output = image + correction * mask

The output is the input outside the hole; inside it, the pre-fill plus the learned correction, so
training starts from the fill (the correction's last conv is zero). :meth:`CompletionUNet.widen_from`
embeds a trained narrower net in a wider one. Train it with ``experiments.supervised_train --model unet
--task completion``.

Example:
    >>> net = CompletionUNet(width=4, levels=2, scale=2)
    >>> image, mask = torch.rand(1, 3, 20, 28), torch.zeros(1, 1, 20, 28)
    >>> mask[..., 5:12, 6:15] = 1
    >>> out = net(image, mask)
    >>> out.shape, bool(torch.equal(out * (1 - mask), image * (1 - mask)))
    (torch.Size([1, 3, 20, 28]), True)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.metrics.hole import check_mask
from rlenhance.models import MODELS, ArchMixin
from rlenhance.models._checks import _check_image, _check_positive_int

__all__ = ["CompletionUNet"]

_DILATIONS = (1, 2, 4)


def _double_conv(in_planes: int, planes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_planes, planes, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(planes, planes, 3, padding=1), nn.ReLU(inplace=True))


@MODELS.register()
class CompletionUNet(ArchMixin, nn.Module):
    """Coarse residual U-Net completion network: pre-filled image + mask in, completed image out.

    Args:
        in_channels: image planes (3 for RGB, 1 for gray); the mask adds one input plane.
        width: planes of the first level; level k has ``width * 2**k``.
        levels: encoder levels (each halves the coarse grid).
        scale: the coarse grid is the input area-downscaled by this factor (1: full resolution).

    Shape:
        ``forward(image, mask)``: image float (B, in_channels, H, W) (hole pre-filled), mask (B, 1, H, W),
        1 = missing -> (B, in_channels, H, W): ``image`` outside the hole, pre-fill + correction inside
        (not clamped). ``forward(x)`` with image and mask concatenated is the same. Any H, W >= 1.
    """

    #: reads the hole mask as its second input (``forward(image, mask)``)
    reads_mask = True
    model_name: ClassVar[str] = "unet"
    #: ``experiments.supervised_train``'s settings where a run leaves them unset (whole bedroom photos)
    train_defaults: ClassVar[Mapping[str, float]] = MappingProxyType({"lr": 1e-3, "batch": 16, "crop": 224,
                                                                       "width": 32})

    def __init__(self, in_channels: int = 3, width: int = 32, levels: int = 3, scale: int = 4):
        super().__init__()
        _check_positive_int("CompletionUNet", in_channels=in_channels, width=width, levels=levels, scale=scale)
        self._kwargs = dict(in_channels=in_channels, width=width, levels=levels, scale=scale)
        self.in_channels, self.levels, self.scale = in_channels, levels, scale
        planes = [width * 2**k for k in range(levels)]
        self.enc = nn.ModuleList()
        previous = in_channels + 1
        for p in planes:
            self.enc.append(_double_conv(previous, p))
            previous = p
        wide = 2 * previous
        mid: list[nn.Module] = []
        for k, dilation in enumerate(_DILATIONS):
            mid += [nn.Conv2d(previous if k == 0 else wide, wide, 3, padding=dilation, dilation=dilation),
                    nn.ReLU(inplace=True)]
        self.mid = nn.Sequential(*mid, nn.Conv2d(wide, previous, 3, padding=1), nn.ReLU(inplace=True))
        self.dec = nn.ModuleList()
        for p in reversed(planes):
            self.dec.append(_double_conv(previous + p, p))
            previous = p
        #: Planes of :meth:`features`.
        self.out_channels = planes[0]
        self.head = nn.Conv2d(planes[0], in_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def embeds(self, arch: Mapping[str, Any]) -> bool:
        """Whether :meth:`widen_from` takes a checkpoint of ``arch``: a CompletionUNet of this one's
        layout (planes, levels, scale) and a width below this one's."""
        kwargs = arch.get("kwargs", {}) if arch.get("class") == type(self).__name__ else {}
        same = all(kwargs.get(k) == v for k, v in self._kwargs.items() if k != "width")
        return same and isinstance(kwargs.get("width"), int) and 0 < kwargs["width"] < self._kwargs["width"]

    def _planes(self, width: int) -> dict[str, tuple[Tensor, Tensor]]:
        """Each conv's (output, input) plane indices, in this net, of a width-``width`` net's planes."""
        ours = [self._kwargs["width"] * 2**k for k in range(self.levels)]
        theirs = [width * 2**k for k in range(self.levels)]
        every = torch.arange
        maps = {}
        previous = every(self.in_channels + 1)
        for k, p in enumerate(theirs):
            maps[f"enc.{k}.0"], maps[f"enc.{k}.2"] = (every(p), previous), (every(p), every(p))
            previous = every(p)
        wide = every(2 * theirs[-1])
        maps.update({"mid.0": (wide, previous), "mid.2": (wide, wide), "mid.4": (wide, wide),
                     "mid.6": (previous, wide)})
        previous_ours = ours[-1]
        for j, (p, p_ours) in enumerate(zip(reversed(theirs), reversed(ours))):  # in: [upsampled, skip]
            maps[f"dec.{j}.0"] = (every(p), torch.cat([previous, previous_ours + every(p)]))
            maps[f"dec.{j}.2"] = (every(p), every(p))
            previous, previous_ours = every(p), p_ours
        maps["head"] = (every(self.in_channels), previous)
        return maps

    @torch.no_grad()
    def widen_from(self, state_dict: Mapping[str, Tensor], width: int) -> None:
        """Load a narrower CompletionUNet's weights (:meth:`embeds`) so that this net computes what it did.

        Function-preserving widening (Net2Net): its planes are this net's first planes, the weights from the
        new planes zeroed; the new planes keep their initial weights.

        Raises:
            ValueError: ``state_dict`` is not that of a width-``width`` net of this layout below this
                one's width (the parameters that differ are named).
        """
        if not self.embeds({"class": type(self).__name__, "kwargs": {**self._kwargs, "width": width}}):
            raise ValueError(f"widen_from: width {width!r} is not a narrower width of this CompletionUNet "
                             f"(width {self._kwargs['width']})")
        maps = self._planes(width)
        expected = {f"{name}.{kind}" for name in maps for kind in ("weight", "bias")}
        if set(state_dict) != expected:
            raise ValueError(f"widen_from: the state_dict's parameters are not a CompletionUNet's: "
                             f"{sorted(set(state_dict) ^ expected)[:3]} differ")
        for name, (out, inp) in maps.items():
            conv = self.get_submodule(name)
            weight, bias = state_dict[f"{name}.weight"], state_dict[f"{name}.bias"]
            for kind, tensor, shape in (("weight", weight, (len(out), len(inp), *conv.kernel_size)),
                                        ("bias", bias, (len(out),))):
                if tuple(tensor.shape) != shape:
                    raise ValueError(f"widen_from: {name}.{kind} of shape {tuple(tensor.shape)} is not that of a "
                                     f"width-{width} CompletionUNet ({shape})")
            conv.weight[out] = 0.0
            conv.weight[out[:, None], inp[None, :]] = weight.to(conv.weight)
            conv.bias[out] = bias.to(conv.bias)

    def _split(self, image: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if mask is None:
            _check_image("CompletionUNet", image, self.in_channels + 1, "input (image and mask concatenated)")
            return image[:, :-1], image[:, -1:]
        _check_image("CompletionUNet", image, self.in_channels, "image")
        check_mask(image, mask)
        return image, mask.to(image.dtype)

    def _coarse(self, image: Tensor, mask: Tensor) -> Tensor:
        """Decoder output on the coarse grid of the padded input."""
        multiple = self.scale * 2**self.levels
        height, width = image.shape[-2:]
        x = torch.cat([image, mask], dim=1)
        x = F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="replicate")
        x = F.avg_pool2d(x, self.scale) if self.scale > 1 else x
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.mid(x)
        for block, skip in zip(self.dec, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x

    def _full(self, coarse: Tensor, height: int, width: int) -> Tensor:
        if self.scale > 1:
            coarse = F.interpolate(coarse, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return coarse[..., :height, :width]

    def features(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """Decoder output upscaled to the input size, float (B, width, H, W) (ReLU outputs, >= 0)."""
        image, mask = self._split(image, mask)
        return self._full(self._coarse(image, mask), *image.shape[-2:])

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """The pre-fill plus the predicted correction in the hole, float (B, in_channels, H, W)."""
        image, mask = self._split(image, mask)
        correction = self._full(self.head(self._coarse(image, mask)), *image.shape[-2:])
        return image + correction * mask
