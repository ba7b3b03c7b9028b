"""MRPNet + Generator: the supervised low-light / denoising baseline of the seed project.

Two sub-networks, usable alone or chained end to end (:class:`CombinedModel`) and trained jointly
with an MSE loss:

* :class:`MRPNet`, a compact encoder-decoder denoiser::

      x -> conv3x3 + ReLU -> conv3x3 stride 2 + ReLU            (encoder, half resolution)
        -> transposed conv3x3 stride 2 + ReLU                    (decoder, back to H x W)
        -> conv3x3 -> (+ x when residual)

* :class:`Generator`, a super-resolution-style enhancer (SRGAN layout at a small size)::

      x -> conv9x9 stride s + ReLU -> residual blocks (x + ReLU(BN(conv3x3 x)))
        -> 2 x [conv3x3 (width -> 4 width) -> PixelShuffle(2) + ReLU]
        -> conv9x9 -> (+ bilinear-upsampled x when residual)

  with ``s = 4 / upscale``: the two PixelShuffle stages multiply the trunk's resolution by 4, so the
  parameter count is the same for every upscale.

Every model has ``arch()`` (registered in :data:`rlenhance.models.MODELS`) and ``features(x)``, the
per-pixel maps its last convolution reads (``out_channels`` planes at the output resolution), so an RL
policy can reuse the trained trunk as a backbone. Outputs are not squashed: clamp for display and metrics.

Example:
    >>> import torch
    >>> net = CombinedModel(channels=3, width=8)
    >>> net(torch.rand(2, 3, 37, 30)).shape
    torch.Size([2, 3, 37, 30])
    >>> net.features(torch.rand(1, 3, 16, 16)).shape == (1, net.out_channels, 16, 16)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.checkpoint import SUPERVISED_UPSCALES
from rlenhance.models import MODELS, ArchMixin
from rlenhance.models._checks import _check_image, _check_positive_int

__all__ = ["TRAIN_DEFAULTS", "CombinedModel", "Generator", "MRPNet", "ResidualBlock"]

#: Upscale factors a :class:`Generator` accepts (powers of two up to 2 ** shuffle stages).
UPSCALES = SUPERVISED_UPSCALES
#: PixelShuffle(2) stages of the Generator (the published model has two).
_SHUFFLE_STAGES = 2
_SHUFFLE_FACTOR = 2
#: ``experiments.supervised_train``'s settings of an ``mrpnet`` where a run leaves them unset: the seed's.
TRAIN_DEFAULTS: Mapping[str, float] = MappingProxyType({"lr": 1e-4, "batch": 16, "crop": 128, "width": 64})


@MODELS.register()
class MRPNet(ArchMixin, nn.Module):
    """Compact encoder-decoder denoiser (see the module docstring for the layout).

    Args:
        in_channels: image planes (3 for RGB, 1 for gray).
        out_channels: output planes; None = ``in_channels``.
        width: feature planes of every layer (64 in the published model).
        residual: add the input to the output (needs ``out_channels == in_channels``).

    Shape:
        x: float (B, in_channels, H, W), any H, W >= 1 -> (B, out_channels, H, W).
    """

    model_name: ClassVar[str] = "mrpnet"
    train_defaults: ClassVar[Mapping[str, float]] = TRAIN_DEFAULTS

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, width: int = 64,
                 residual: bool = True):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        _check_positive_int("MRPNet", in_channels=in_channels, out_channels=out_channels, width=width)
        if residual and out_channels != in_channels:
            raise ValueError(f"MRPNet: residual=True needs out_channels == in_channels; got {in_channels} -> "
                             f"{out_channels}")
        self._kwargs = dict(in_channels=in_channels, out_channels=out_channels, width=width, residual=bool(residual))
        self.in_channels, self.residual = in_channels, bool(residual)
        #: Planes of :meth:`features` (the maps the output convolution reads).
        self.out_channels = width
        self.enc1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.enc2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.dec = nn.ConvTranspose2d(width, width, 3, stride=2, padding=1)
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    def features(self, x: Tensor) -> Tensor:
        """Decoder features, float (B, width, H, W) (ReLU outputs, >= 0)."""
        _check_image("MRPNet", x, self.in_channels)
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(e1))
        return F.relu(self.dec(e2, output_size=e1.shape[-2:]))

    def forward(self, x: Tensor) -> Tensor:
        """Restored image, float (B, out_channels, H, W), nominally in [0, 1] (not clamped)."""
        y = self.head(self.features(x))
        return x + y if self.residual else y


class ResidualBlock(nn.Module):
    """``x + ReLU(BN(conv3x3(x)))``, the Generator's residual block.

    Args:
        channels: planes of the input and output.

    Shape:
        (B, channels, H, W) -> (B, channels, H, W).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.bn(self.conv(x)))


@MODELS.register()
class Generator(ArchMixin, nn.Module):
    """Super-resolution-style enhancer: residual blocks and PixelShuffle upsampling.

    See the module docstring for the layout.

    Args:
        in_channels: image planes (3 for RGB, 1 for gray).
        out_channels: output planes; None = ``in_channels``.
        width: feature planes (64 in the published model).
        n_blocks: residual blocks (1 in the published model).
        upscale: 1 (same size, enhancement), 2 or 4 (super-resolution).
        residual: add the input (bilinearly upsampled when ``upscale > 1``) to the output
            (needs ``out_channels == in_channels``).

    Shape:
        x: float (B, in_channels, H, W), any H, W >= 1 -> (B, out_channels, upscale H, upscale W).
        Sizes that are not multiples of ``4 / upscale`` are handled by cropping the trunk's output.
    """

    model_name: ClassVar[str] = "mrpnet"

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, width: int = 64,
                 n_blocks: int = 1, upscale: int = 1, residual: bool = True):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        _check_positive_int("Generator", in_channels=in_channels, out_channels=out_channels, width=width,
                            n_blocks=n_blocks)
        if isinstance(upscale, bool) or upscale not in UPSCALES:
            raise ValueError(f"Generator: upscale={upscale!r}; expected one of {UPSCALES}")
        if residual and out_channels != in_channels:
            raise ValueError(f"Generator: residual=True needs out_channels == in_channels; got {in_channels} -> "
                             f"{out_channels}")
        self._kwargs = dict(in_channels=in_channels, out_channels=out_channels, width=width, n_blocks=n_blocks,
                            upscale=upscale, residual=bool(residual))
        self.in_channels, self.upscale, self.residual = in_channels, upscale, bool(residual)
        #: Planes of :meth:`features`.
        self.out_channels = width
        self.stride = _SHUFFLE_FACTOR ** _SHUFFLE_STAGES // upscale
        self.head = nn.Conv2d(in_channels, width, 9, stride=self.stride, padding=4)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(n_blocks)))
        self.shuffle = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(width, width * _SHUFFLE_FACTOR ** 2, 3, padding=1),
                          nn.PixelShuffle(_SHUFFLE_FACTOR), nn.ReLU(inplace=True))
            for _ in range(_SHUFFLE_STAGES)
        ))
        self.tail = nn.Conv2d(width, out_channels, 9, padding=4)

    def features(self, x: Tensor) -> Tensor:
        """Upsampled trunk features, float (B, width, upscale H, upscale W)."""
        _check_image("Generator", x, self.in_channels)
        height, width = x.shape[-2] * self.upscale, x.shape[-1] * self.upscale
        z = F.relu(self.head(x))
        z = self.shuffle(self.blocks(z))
        return z[..., :height, :width]

    def forward(self, x: Tensor) -> Tensor:
        """Enhanced image, float (B, out_channels, upscale H, upscale W), nominally in [0, 1]."""
        y = self.tail(self.features(x))
        if not self.residual:
            return y
        if self.upscale > 1:
            x = F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return x + y


@MODELS.register()
class CombinedModel(ArchMixin, nn.Module):
    """:class:`MRPNet` (denoise) followed by :class:`Generator` (enhance), trained end to end.

    Args:
        channels: image planes in and out (3 for RGB, 1 for gray).
        width: feature planes of both sub-networks (64 in the published models).
        n_blocks: the Generator's residual blocks.
        upscale: the Generator's upscale factor (1, 2 or 4).
        residual: both sub-networks add their input to their output.

    Shape:
        x: float (B, channels, H, W) -> (B, channels, upscale H, upscale W).
    """

    model_name: ClassVar[str] = "mrpnet"
    train_defaults: ClassVar[Mapping[str, float]] = TRAIN_DEFAULTS

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 1, upscale: int = 1,
                 residual: bool = True):
        super().__init__()
        self._kwargs = dict(channels=channels, width=width, n_blocks=n_blocks, upscale=upscale,
                            residual=bool(residual))
        self.in_channels = channels
        self.denoiser = MRPNet(channels, channels, width=width, residual=residual)
        self.generator = Generator(channels, channels, width=width, n_blocks=n_blocks, upscale=upscale,
                                   residual=residual)
        #: Planes of :meth:`features` (the Generator's).
        self.out_channels = self.generator.out_channels

    def features(self, x: Tensor) -> Tensor:
        """The Generator's features of the denoised image, float (B, width, upscale H, upscale W)."""
        return self.generator.features(self.denoiser(x))

    def forward(self, x: Tensor) -> Tensor:
        """Denoised then enhanced image, float (B, channels, upscale H, upscale W)."""
        return self.generator(self.denoiser(x))
