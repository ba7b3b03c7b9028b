"""PixelRNN-style image completion with ConvLSTM: the two supervised completion baselines of the seeds.

(a) :class:`PixelRNN` (the occluded-bedroom model): RGB in, no mask::

        x -> [conv3x3 stride 2 + ReLU] x levels     (width, 2 width, 4 width channels; 1/8 resolution;
                                                     ``variant="seed"``: the first conv is 5x5, as the seed's)
          -> one ConvLSTM step from a zero state     (4 width hidden planes)
          -> [conv3x3 -> PixelShuffle(2) + ReLU] x levels   (2 width, width, width / 2 channels)
          -> conv3x3 -> sigmoid

    Trained with :func:`mse_ssim_loss` on the whole image.

(b) :class:`GatedPixelRNN`: RGB + mask in::

        [x, mask] -> conv3x3 + ReLU
          -> n_gated x [ f * g with f = tanh(BN(conv x)), g = sigmoid(BN(conv x));
                        (h, c) = ConvLSTM(f * g, (h, c));  x = f * g + h ]   (one cell carried across)
          -> 2 residual blocks (ReLU(x + BN(conv(ReLU(BN(conv x))))))
          -> conv3x3 -> sigmoid

    Trained with :func:`completion_loss` on the :func:`composite`. ``variant="seed"`` is the seed's code::

        [x, mask] -> conv7x7 (no ReLU) = skip
          -> n_gated x [ ... as above ...;  x = f * g + h + skip ]      (a global input skip)
          -> 2 residual blocks
          -> conv3x3 -> 32 planes -> ReLU -> conv1x1 -> sigmoid
        every convolution Xavier-uniform with zero bias

Both classes take ``variant`` (:data:`VARIANTS`); :meth:`arch` records a non-default one. Masks are float
(B, 1, H, W) with 1 = missing pixel. Every model has ``arch()`` and ``features(...)``: the per-pixel maps
its output convolution reads, ``out_channels`` planes at the input resolution.

Example:
    >>> net = GatedPixelRNN(width=8)
    >>> occluded, mask = torch.rand(2, 3, 24, 20), torch.zeros(2, 1, 24, 20)
    >>> pred = net(occluded, mask)
    >>> pred.shape, bool(torch.equal(composite(occluded, pred, mask), occluded))
    (torch.Size([2, 3, 24, 20]), True)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.checkpoint import SUPERVISED_VARIANTS
from rlenhance.losses import mse_loss, ssim_loss
from rlenhance.metrics import _as_batch_pair
from rlenhance.metrics.hole import check_mask, hole_l1
from rlenhance.models import MODELS, ArchMixin
from rlenhance.models._checks import _check_image, _check_positive_int

__all__ = ["DEFAULT_SSIM_WINDOW", "GATED_SEED_SSIM_WINDOW", "VARIANTS", "CompletionLoss", "ConvLSTMCell", "GatedConv",
           "GatedPixelRNN", "MSESSIMLoss", "PixelRNN", "completion_loss", "composite", "mse_ssim_loss"]

_SHUFFLE_FACTOR = 2
#: Architecture variants of both models: ours, or the seed's code exactly.
VARIANTS = SUPERVISED_VARIANTS
#: The seed PixelRNN's first encoder kernel (ours: 3).
_SEED_FIRST_KERNEL = 5
#: The seed gated PixelRNN's input kernel (ours: 3) and the planes of its two-conv output head.
_SEED_INPUT_KERNEL = 7
_SEED_HEAD_PLANES = 32
#: Gaussian taps per axis of the losses' SSIM (PIQ's); the gated PixelRNN seed had 7.
DEFAULT_SSIM_WINDOW = 11
GATED_SEED_SSIM_WINDOW = 7


def _check_variant(owner: str, variant: Any) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"{owner}: variant={variant!r}; expected one of {VARIANTS}")


def _xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every convolution of ``module`` (the seed's init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# --- building blocks -----------------------------------------------------------------------------
class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al., 2015) without peepholes.

    ``i, f, o, g = conv([x, h])``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``;
    ``h' = sigmoid(o) tanh(c')``.

    Args:
        in_channels: planes of the input x.
        hidden_channels: planes of h and c.
        kernel_size: odd size of the gate convolution.

    Shape:
        x: (B, in_channels, H, W); state: ``(h, c)``, each (B, hidden_channels, H, W), or None
        for zeros -> ``(h', c')``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        _check_positive_int("ConvLSTMCell", in_channels=in_channels, hidden_channels=hidden_channels,
                            kernel_size=kernel_size)
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvLSTMCell: kernel_size={kernel_size}; expected an odd integer")
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                               padding=kernel_size // 2)

    def init_hidden(self, batch: int, size: tuple[int, int], *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)`` of shape (batch, hidden_channels, *size)."""
        h = torch.zeros(batch, self.hidden_channels, *size, device=device, dtype=dtype)
        return h, torch.zeros_like(h)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.init_hidden(x.shape[0], tuple(x.shape[-2:]), device=x.device, dtype=x.dtype)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class GatedConv(nn.Module):
    """Gated convolution ``tanh(BN(conv_f x)) * sigmoid(BN(conv_g x))`` (the gated PixelRNN layer).

    Args:
        channels: planes of the input and output.
        kernel_size: odd size of both convolutions.

    Shape:
        (B, channels, H, W) -> (B, channels, H, W), values in (-1, 1).
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv_f = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.bn_f = nn.BatchNorm2d(channels)
        self.conv_g = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.bn_g = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.bn_f(self.conv_f(x))) * torch.sigmoid(self.bn_g(self.conv_g(x)))


class _ResidualBlock(nn.Module):
    """``ReLU(x + BN(conv(ReLU(BN(conv x)))))``: two 3x3 convolutions with batch norm."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


# --- (a) encoder -> ConvLSTM -> PixelShuffle decoder ---------------------------------------------
@MODELS.register()
class PixelRNN(ArchMixin, nn.Module):
    """Encoder -> one ConvLSTM step -> PixelShuffle decoder (the occluded-bedroom model).

    Args:
        in_channels: image planes (3 for RGB, 1 for gray).
        out_channels: output planes; None = ``in_channels``.
        width: planes of the first encoder level; level k has ``width * 2**k`` (64 published).
        levels: stride-2 encoder levels and PixelShuffle decoder stages (3 published: 1/8 resolution).
        variant: ``"default"`` (3x3 first conv) or ``"seed"`` (5x5 first conv, the seed's code).

    Shape:
        x: float (B, in_channels, H, W), any H, W >= 1 (padded by edge replication to a multiple
        of ``2**levels`` and cropped back) -> (B, out_channels, H, W), values in (0, 1).
    """

    model_name: ClassVar[str] = "pixelrnn"
    #: ``experiments.supervised_train``'s settings where a run leaves them unset (whole bedroom photos)
    train_defaults: ClassVar[Mapping[str, float]] = MappingProxyType({"lr": 1e-3, "batch": 16, "crop": 224,
                                                                       "width": 64})

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, width: int = 64, levels: int = 3,
                 variant: str = "default"):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        _check_positive_int("PixelRNN", in_channels=in_channels, out_channels=out_channels, width=width,
                            levels=levels)
        _check_variant("PixelRNN", variant)
        self._kwargs = dict(in_channels=in_channels, out_channels=out_channels, width=width, levels=levels,
                            **({"variant": variant} if variant != "default" else {}))
        self.in_channels, self.levels, self.variant = in_channels, levels, variant
        chans = [width * 2**k for k in range(levels)]
        encoder: list[nn.Module] = []
        previous = in_channels
        for k, ch in enumerate(chans):
            kernel = _SEED_FIRST_KERNEL if variant == "seed" and k == 0 else 3
            encoder += [nn.Conv2d(previous, ch, kernel, stride=2, padding=kernel // 2), nn.ReLU(inplace=True)]
            previous = ch
        self.encoder = nn.Sequential(*encoder)
        self.cell = ConvLSTMCell(chans[-1], chans[-1])
        targets = [max(width // 2, 1)] + chans[:-1]  # decoder stage k maps chans[k] -> targets[k]
        decoder: list[nn.Module] = []
        for k in reversed(range(levels)):
            decoder += [nn.Conv2d(chans[k], targets[k] * _SHUFFLE_FACTOR**2, 3, padding=1),
                        nn.PixelShuffle(_SHUFFLE_FACTOR), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*decoder)
        #: Planes of :meth:`features`.
        self.out_channels = targets[0]
        self.head = nn.Conv2d(targets[0], out_channels, 3, padding=1)

    def features(self, x: Tensor) -> Tensor:
        """Decoder output, float (B, out_channels, H, W) (ReLU outputs, >= 0)."""
        _check_image("PixelRNN", x, self.in_channels)
        height, width = x.shape[-2:]
        multiple = _SHUFFLE_FACTOR**self.levels
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        h, _ = self.cell(self.encoder(x))
        return self.decoder(h)[..., :height, :width]

    def forward(self, x: Tensor) -> Tensor:
        """Reconstructed image, float (B, out_channels, H, W) in (0, 1)."""
        return torch.sigmoid(self.head(self.features(x)))


# --- (b) gated PixelRNN with mask input ----------------------------------------------------------
@MODELS.register()
class GatedPixelRNN(ArchMixin, nn.Module):
    """Gated PixelRNN completion network: image + mask in, completed image out.

    Args:
        in_channels: image planes (3 for RGB, 1 for gray); the mask adds one input plane.
        width: hidden planes of every layer (48 published).
        n_gated: gated layers sharing the one ConvLSTM cell (3 published).
        n_res: residual blocks after them (2 published).
        variant: ``"default"`` (ours) or ``"seed"`` (the seed's code, module docstring).

    Shape:
        ``forward(image, mask)``: image float (B, in_channels, H, W) in [0, 1], mask (B, 1, H, W),
        1 = missing -> (B, in_channels, H, W) in (0, 1), the prediction everywhere (blend it with
        :func:`composite`). ``forward(x)`` with image and mask concatenated is the same.
    """

    #: reads the hole mask as its second input (``forward(image, mask)``)
    reads_mask = True
    model_name: ClassVar[str] = "gated-pixelrnn"
    #: ``experiments.supervised_train``'s settings where a run leaves them unset (whole bedroom photos)
    train_defaults: ClassVar[Mapping[str, float]] = MappingProxyType({"lr": 1e-4, "batch": 4, "crop": 224,
                                                                       "width": 48})

    def __init__(self, in_channels: int = 3, width: int = 48, n_gated: int = 3, n_res: int = 2,
                 variant: str = "default"):
        super().__init__()
        _check_positive_int("GatedPixelRNN", in_channels=in_channels, width=width, n_gated=n_gated)
        if isinstance(n_res, bool) or not isinstance(n_res, int) or n_res < 0:
            raise ValueError(f"GatedPixelRNN: n_res={n_res!r}; expected an integer >= 0")
        _check_variant("GatedPixelRNN", variant)
        self._kwargs = dict(in_channels=in_channels, width=width, n_gated=n_gated, n_res=n_res,
                            **({"variant": variant} if variant != "default" else {}))
        self.in_channels, self.variant = in_channels, variant
        #: Planes of :meth:`features`.
        self.out_channels = width
        seed = variant == "seed"
        kernel = _SEED_INPUT_KERNEL if seed else 3
        self.input_conv = nn.Conv2d(in_channels + 1, width, kernel, padding=kernel // 2)
        self.gated = nn.ModuleList(GatedConv(width) for _ in range(n_gated))
        self.cell = ConvLSTMCell(width, width)
        self.res_blocks = nn.Sequential(*(_ResidualBlock(width) for _ in range(n_res)))
        self.head: nn.Module = nn.Sequential(
            nn.Conv2d(width, _SEED_HEAD_PLANES, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(_SEED_HEAD_PLANES, in_channels, 1),
        ) if seed else nn.Conv2d(width, in_channels, 3, padding=1)
        if seed:
            _xavier_init(self)

    def _input(self, image: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            _check_image("GatedPixelRNN", image, self.in_channels + 1, "input (image and mask concatenated)")
            return image
        _check_image("GatedPixelRNN", image, self.in_channels, "image")
        check_mask(image, mask)
        return torch.cat([image, mask.to(image.dtype)], dim=1)

    def features(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """Features after the residual blocks, float (B, width, H, W)."""
        x = self.input_conv(self._input(image, mask))
        skip = x if self.variant == "seed" else None  # the seed adds its input conv's output after every layer
        if skip is None:
            x = F.relu(x)
        state = None
        for layer in self.gated:
            x = layer(x)
            state = self.cell(x, state)
            x = x + state[0] if skip is None else x + state[0] + skip
        return self.res_blocks(x)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """Predicted image, float (B, in_channels, H, W) in (0, 1)."""
        return torch.sigmoid(self.head(self.features(image, mask)))


# --- composite, losses and hole metrics ----------------------------------------------------------
def composite(occluded: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
    """Keep the known pixels, take the prediction in the hole: ``occluded (1 - mask) + pred mask``.

    Args:
        occluded: the input image, float (B, C, H, W).
        pred: the prediction, same shape.
        mask: float (B, 1, H, W) (or broadcastable), 1 = missing pixel.

    Returns:
        float (B, C, H, W); equal to ``occluded`` wherever ``mask == 0``.
    """
    occluded, pred = _as_batch_pair(occluded, pred, "occluded", "pred")
    check_mask(occluded, mask)
    mask = mask.to(pred.dtype)
    return occluded * (1 - mask) + pred * mask


LossTerms = Tensor | tuple[Tensor, dict[str, Tensor]]


def mse_ssim_loss(pred: Tensor, target: Tensor, *, w_mse: float = 0.8, w_ssim: float = 0.2,
                  ssim_window: int = DEFAULT_SSIM_WINDOW, return_terms: bool = False) -> LossTerms:
    """``w_mse MSE + w_ssim (1 - SSIM)`` per image (the bedroom ConvLSTM model's loss).

    SSIM is :func:`rlenhance.metrics.ssim` (Gaussian window of ``ssim_window`` taps, sigma 1.5, data range 1).

    Args:
        pred, target: float (B, C, H, W) in [0, 1], H and W >= ``ssim_window``.
        w_mse, w_ssim: weights of the two terms.
        ssim_window: odd number of Gaussian taps per axis of the SSIM.
        return_terms: also return the unweighted terms ``{"mse": (B,), "ssim_loss": (B,)}``.

    Returns:
        float (B,), or ``(values, terms)``.
    """
    mse = mse_loss(pred, target)
    ssim_term = ssim_loss(pred, target, win_size=ssim_window)
    values = w_mse * mse + w_ssim * ssim_term
    return (values, {"mse": mse, "ssim_loss": ssim_term}) if return_terms else values


def completion_loss(pred: Tensor, original: Tensor, occluded: Tensor, mask: Tensor, *, w_l1: float = 0.8,
                    w_ssim: float = 0.2, ssim_window: int = DEFAULT_SSIM_WINDOW,
                    return_terms: bool = False) -> LossTerms:
    """``w_l1 hole_l1(pred) + w_ssim (1 - SSIM(composite, original))`` per image (gated PixelRNN).

    The L1 term is averaged over the hole's pixels only (:func:`~rlenhance.metrics.hole.hole_l1`), so
    gradients reach ``pred`` only inside the hole; the SSIM is skimage's (symmetric extension).

    Args:
        pred: prediction, float (B, C, H, W) in [0, 1], H and W >= ``ssim_window``.
        original: the complete reference, same shape.
        occluded: the input with the hole, same shape.
        mask: float (B, 1, H, W), 1 = missing pixel.
        w_l1, w_ssim: weights of the two terms.
        ssim_window: odd number of Gaussian taps per axis of the SSIM (sigma 1.5).
        return_terms: also return ``{"hole_l1": (B,), "ssim_loss": (B,)}``.

    Returns:
        float (B,), or ``(values, terms)``.
    """
    l1_term = hole_l1(pred, original, mask)
    ssim_term = ssim_loss(composite(occluded, pred, mask), original, win_size=ssim_window)
    values = w_l1 * l1_term + w_ssim * ssim_term
    return (values, {"hole_l1": l1_term, "ssim_loss": ssim_term}) if return_terms else values


class MSESSIMLoss(nn.Module):
    """Module form of :func:`mse_ssim_loss`; ``forward(pred, target)`` returns (B,) values."""

    def __init__(self, w_mse: float = 0.8, w_ssim: float = 0.2, ssim_window: int = DEFAULT_SSIM_WINDOW):
        super().__init__()
        self.w_mse, self.w_ssim, self.ssim_window = float(w_mse), float(w_ssim), int(ssim_window)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return mse_ssim_loss(pred, target, w_mse=self.w_mse, w_ssim=self.w_ssim, ssim_window=self.ssim_window)

    def extra_repr(self) -> str:
        return f"w_mse={self.w_mse}, w_ssim={self.w_ssim}, ssim_window={self.ssim_window}"


class CompletionLoss(nn.Module):
    """Module form of :func:`completion_loss`; ``forward(pred, original, occluded, mask)`` -> (B,)."""

    def __init__(self, w_l1: float = 0.8, w_ssim: float = 0.2, ssim_window: int = DEFAULT_SSIM_WINDOW):
        super().__init__()
        self.w_l1, self.w_ssim, self.ssim_window = float(w_l1), float(w_ssim), int(ssim_window)

    def forward(self, pred: Tensor, original: Tensor, occluded: Tensor, mask: Tensor) -> Tensor:
        return completion_loss(pred, original, occluded, mask, w_l1=self.w_l1, w_ssim=self.w_ssim,
                               ssim_window=self.ssim_window)

    def extra_repr(self) -> str:
        return f"w_l1={self.w_l1}, w_ssim={self.w_ssim}, ssim_window={self.ssim_window}"
