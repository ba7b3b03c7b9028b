"""FFDNet: a denoiser driven by a per-pixel noise-level map (ReLLIE's denoiser module).

ReLLIE runs FFDNet (Zhang, Zuo & Zhang, "FFDNet: Toward a Fast and Flexible Solution for
CNN-Based Image Denoising", TIP 2018) after its last curve step, with a noise-level map set by
how much each pixel was brightened. :class:`FFDNet` is that network at a configurable size::

      x (B, C, H, W)                      noise_map (B, C, H, W), std in image units
        -> PixelUnshuffle(2): (B, 4C, H/2, W/2)     -> 2x2 mean: (B, C, H/2, W/2)
        -> concatenated (B, 5C, H/2, W/2)
        -> conv3x3 + ReLU -> (depth - 2) x [conv3x3 + ReLU] -> conv3x3 to 4C planes
        -> PixelShuffle(2): the noise estimate n (B, C, H, W) -> x - n  (residual, as ReLLIE
           uses it: ``imorig - net(imorig, nsigma)``)

The published gray model has ``depth=15``, ``width=64`` (RGB: 12 and 96); FFDNet's batch
normalisation is left out (as in MRPNet), so training and inference compute the same function
for any batch. Without it, so deep a plain stack trains only from a start that keeps the signal:
a new network's hidden convolutions are identities (PyTorch's default start leaves a 15-layer
one at the identity, ``x - n`` with a constant ``n``; see :meth:`FFDNet._init_hidden`). Odd sizes
are padded to even (by reflection, as :class:`rlenhance.restore.SupervisedRestorer` pads) and
cropped back.

The map is the standard deviation of the noise at each pixel, in image units ([0, 1] scale, i.e.
``sigma / 255``): :func:`rlenhance.data.noise_level_map` of the brightening
(:func:`rlenhance.ops.le_gain` multiplied over the curve steps) and of the dark input's noise
level. :class:`rlenhance.Enhancer` computes it and feeds it when its ``denoiser`` is a checkpoint
of ``experiments.supervised_train --model ffdnet`` (trained on
:func:`rlenhance.data.amplified_noise`); the plain denoisers (MRPNet) read no map. Trained on
white Gaussian noise instead (``--noise gaussian``, FFDNet's own protocol: each crop's level drawn
from a range, e.g. [0, 75], its map the constant ``sigma / 255``), it is one non-blind model for
every level of the range: :func:`rlenhance.load_denoiser` (``"ffdnet"``) gives it the map of a
known level, or of the level estimated in each image.

Example:
    >>> net = FFDNet(in_channels=1, width=8, depth=3)
    >>> x = torch.rand(2, 1, 17, 20)
    >>> net(x, torch.full_like(x, 10 / 255)).shape
    torch.Size([2, 1, 17, 20])
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.errors import ImageError
from rlenhance.models import MODELS
from rlenhance.ops.tiling import pad_to_multiple

__all__ = ["FFDNet", "MIN_DEPTH"]

#: Fewest convolution layers: the input and the output convolutions.
MIN_DEPTH = 2
#: Side of the pixel-unshuffle blocks (FFDNet's downsampling).
_FACTOR = 2


@MODELS.register()
class FFDNet(nn.Module):
    """FFDNet-style denoiser reading the image and a per-pixel noise-level map (see the module
    docstring for the layout).

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
    #: ``experiments.supervised_train``'s settings where a run leaves them unset: FFDNet trained with Adam at
    #: 1e-3 on small gray patches (50 x 50 at batch 128 in the paper)
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

        Without batch normalisation, PyTorch's default initialisation (weight variance
        ``1 / (3 fan_in)``, a sixth of what keeps a ReLU stack's signal) leaves the activations
        to the biases: the input's share of them falls about 2.5-fold per layer (width 64:
        0.6 at layer 3, 0.009 at layer 8, 2e-5 at layer 15, below float16's resolution from
        layer 12 on), so a fresh 15-layer network outputs the same for any input, its first
        layer's gradient is ~1e-7 of its weights, and training sits at the identity (``x - n``
        with a constant ``n``). As identities the hidden layers pass the signal and the gradient
        on whole: a deep network starts as its input and output convolutions alone, and learns
        from there. Only a new network's start: a checkpoint's weights replace it.
        """
        for conv in [m for m in self.body if isinstance(m, nn.Conv2d)][1:-1]:
            nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)

    def arch(self) -> dict[str, Any]:
        """``{"class": "FFDNet", "kwargs": {...}}`` for checkpoints."""
        return {"class": type(self).__name__, "kwargs": dict(self._kwargs)}

    def _check(self, x: Tensor, noise_map: Tensor) -> Tensor:
        """``noise_map`` checked against ``x`` and expanded to its planes."""
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != self.in_channels or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
            raise ImageError(f"FFDNet: input is {got}; expected a float tensor of shape (B, {self.in_channels}, H, W)")
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
            ImageError: a tensor of another shape or dtype (the message names it and the
                accepted shape).
        """
        noise_map = self._check(x, noise_map)
        height, width = x.shape[-2:]
        # odd sizes: padded as SupervisedRestorer pads its input, so both give the same result
        x_in, noise_map = pad_to_multiple(x, _FACTOR), pad_to_multiple(noise_map.to(x.dtype), _FACTOR)
        z = torch.cat([self.unshuffle(x_in), F.avg_pool2d(noise_map, _FACTOR)], dim=1)
        if z.device.type == "cpu":  # oneDNN's convolutions run 1.6-1.8x faster on channels-last planes
            z = z.contiguous(memory_format=torch.channels_last)
        y = self.shuffle(self.body(z))[..., :height, :width]
        return x - y if self.residual else y
