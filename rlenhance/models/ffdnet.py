"""FFDNet: a denoiser driven by a per-pixel noise-level map (ReLLIE's denoiser module).

ReLLIE runs FFDNet (Zhang, Zuo & Zhang, TIP 2018) after its last curve step, with a noise-level map set
by how much each pixel was brightened. :class:`FFDNet` is that network at a configurable size::

      x (B, C, H, W)                      noise_map (B, C, H, W), std in image units
        -> PixelUnshuffle(2): (B, 4C, H/2, W/2)     -> 2x2 mean: (B, C, H/2, W/2)
        -> concatenated (B, 5C, H/2, W/2)
        -> conv3x3 + ReLU -> (depth - 2) x [conv3x3 + ReLU] -> conv3x3 to 4C planes
        -> PixelShuffle(2): the noise estimate n (B, C, H, W) -> x - n  (residual, as ReLLIE
           uses it: ``imorig - net(imorig, nsigma)``)

FFDNet's batch normalisation is left out, so a new network's hidden convolutions start as identities
(:meth:`FFDNet._init_hidden`). Odd sizes are padded to even by reflection and cropped back.

The map is the standard deviation of the noise at each pixel, in image units (``sigma / 255``), e.g.
:func:`rlenhance.data.noise_level_map` of the brightening (:class:`rlenhance.Enhancer`) or the constant map
of a known or estimated level (:func:`rlenhance.load_denoiser`).

Example:
    >>> net = FFDNet(in_channels=1, width=8, depth=3)
    >>> x = torch.rand(2, 1, 17, 20)
    >>> net(x, torch.full_like(x, 10 / 255)).shape
    torch.Size([2, 1, 17, 20])
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.errors import ImageError
from rlenhance.models import MODELS, ArchMixin
from rlenhance.models._checks import _check_image
from rlenhance.ops.tiling import pad_to_multiple

__all__ = ["FFDNet", "MIN_DEPTH"]

#: Fewest convolution layers: the input and the output convolutions.
MIN_DEPTH = 2
#: Side of the pixel-unshuffle blocks (FFDNet's downsampling).
_FACTOR = 2


@MODELS.register()
class FFDNet(ArchMixin, nn.Module):
    """FFDNet-style denoiser reading the image and a per-pixel noise-level map (module docstring).

    Args:
        in_channels: image planes (1 for gray, 3 for RGB); the map has as many.
        width: feature planes of the hidden convolutions (64 in the published gray model).
        depth: convolution layers, >= 2 (15 in the published gray model).
        residual: predict the noise and return ``x - noise`` (FFDNet's and ReLLIE's use); False
            returns the network's output as the image.

    Shape:
        x: float (B, in_channels, H, W), any H, W >= 1; noise_map: float >= 0, (B, in_channels, H, W)
        or (B, 1, H, W) (one level for every plane) -> (B, in_channels, H, W), nominally in
        [0, 1] (not clamped).
    """

    #: reads a per-pixel noise-level map as its second input (``forward(x, noise_map)``)
    reads_noise_map = True
    model_name: ClassVar[str] = "ffdnet"
    #: ``experiments.supervised_train``'s settings where a run leaves them unset
    train_defaults: ClassVar[Mapping[str, float]] = MappingProxyType({"lr": 1e-3, "batch": 16, "crop": 64,
                                                                       "width": 64})

    def __init__(self, in_channels: int = 1, width: int = 64, depth: int = 15, residual: bool = True):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("width", width, 1), ("depth", depth, MIN_DEPTH)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"FFDNet: {name}={value!r}; expected an integer >= {low}")
        self._kwargs = dict(in_channels=in_channels, width=width, depth=depth, residual=bool(residual))
        self.in_channels, self.residual = in_channels, bool(residual)
        blocks = _FACTOR * _FACTOR
        # a module, so that SupervisedRestorer counts its stride (tiles aligned to the 2x2 blocks)
        self.unshuffle = nn.PixelUnshuffle(_FACTOR)
        convs = [nn.Conv2d(in_channels * (blocks + 1), width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            convs += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        convs.append(nn.Conv2d(width, in_channels * blocks, 3, padding=1))
        self.body = nn.Sequential(*convs)
        self.shuffle = nn.PixelShuffle(_FACTOR)
        self._init_hidden()

    def _init_hidden(self) -> None:
        """Start every hidden convolution as the identity (:func:`torch.nn.init.dirac_`, zero bias).

        Without batch normalisation, PyTorch's default start loses the input's signal through a deep stack;
        as identities the hidden layers pass the signal and the gradient on whole.
        """
        for conv in [m for m in self.body if isinstance(m, nn.Conv2d)][1:-1]:
            nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)

    def _check(self, x: Tensor, noise_map: Tensor) -> Tensor:
        """``noise_map`` checked against ``x`` and expanded to its planes."""
        _check_image("FFDNet", x, self.in_channels)
        if not torch.is_tensor(noise_map) or noise_map.dim() != 4 or noise_map.shape[0] != x.shape[0] \
                or noise_map.shape[1] not in (1, self.in_channels) or noise_map.shape[-2:] != x.shape[-2:] \
                or not noise_map.is_floating_point():
            got = f"{tuple(noise_map.shape)} {noise_map.dtype}" if torch.is_tensor(noise_map) else \
                type(noise_map).__name__
            raise ImageError(f"FFDNet: noise_map is {got}; expected a float tensor of shape ({x.shape[0]}, "
                             f"{self.in_channels} or 1, {x.shape[-2]}, {x.shape[-1]}) (the input's size)")
        return noise_map.expand(-1, self.in_channels, -1, -1)

    def forward(self, x: Tensor, noise_map: Tensor) -> Tensor:
        """Denoised image, float (B, in_channels, H, W), nominally in [0, 1] (not clamped).

        Args:
            x: noisy image, float (B, in_channels, H, W).
            noise_map: per-pixel noise standard deviation in image units (``sigma / 255``),
                (B, in_channels or 1, H, W).

        Raises:
            ImageError: a tensor of another shape or dtype.
        """
        noise_map = self._check(x, noise_map)
        height, width = x.shape[-2:]
        # odd sizes: padded as SupervisedRestorer pads its input, so both give the same result
        x_in, noise_map = pad_to_multiple(x, _FACTOR), pad_to_multiple(noise_map.to(x.dtype), _FACTOR)
        z = torch.cat([self.unshuffle(x_in), F.avg_pool2d(noise_map, _FACTOR)], dim=1)
        if z.device.type == "cpu":  # oneDNN's convolutions are faster on channels-last planes
            z = z.contiguous(memory_format=torch.channels_last)
        y = self.shuffle(self.body(z))[..., :height, :width]
        return x - y if self.residual else y
