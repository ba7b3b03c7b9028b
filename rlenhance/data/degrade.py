"""Synthetic degradations: low light, Gaussian noise, noise amplified by brightening (ReLLIE's
denoiser setting), batched in torch (occlusions: :mod:`rlenhance.data.occlusion`).

Every function works on float32 images in [0, 1] of shape ``(*, C, H, W)`` (a batch of B images, each
with its own random parameters), stays on the input's device, and takes all its randomness from
``generator``: the same state gives the same output, a CPU generator included for CUDA inputs; ``None``
uses torch's global RNG. With a sequence of B generators, or a :class:`~rlenhance.data.rows.RowStream`
of B rows, image k's numbers come from generator k (row k) in the order the function lists, so its result
does not depend on the rest of the batch (a batch can be drawn in parts, by data-parallel ranks).

Ranges are ``(low, high)`` tuples, drawn uniformly per image; a single number means that fixed value.
Each function but :func:`amplified_noise` (a data pipeline's step) has an ``nn.Module`` twin holding
the parameters, as Kornia's augmentations do (:class:`~rlenhance.data.occlusion.RandomOcclusion`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.data.rows import RowStream
from rlenhance.ops.curves import le_curve, le_gain

__all__ = ["synthetic_low_light", "add_gaussian_noise", "amplified_noise", "noise_level_map", "noise_ramp",
           "SyntheticLowLight", "AddGaussianNoise", "AmplifiedNoise"]

Range = float | tuple[float, float]
IntRange = int | tuple[int, int]
#: A ``generator`` argument: one generator, None (torch's global RNG), one per image, or a RowStream.
Generators = torch.Generator | Sequence[torch.Generator] | RowStream | None

#: DnCNN / PixelRL express the noise level on the 0-255 scale of 8-bit images.
_PIXEL_SCALE = 255.0


def _as_range(value: Range, name: str, *, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    """``value`` as ``(lo, hi)`` with ``low <= lo <= hi <= high``; a number means ``(v, v)``."""
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number or a (low, high) pair, got {value!r}") from None
    if not (low <= lo <= hi <= high) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: expected low <= high within [{low}, {high}], got {value!r}")
    return lo, hi


def _as_int_range(value: IntRange, name: str, *, low: int) -> tuple[int, int]:
    lo, hi = _as_range(value, name, low=low)
    if lo != int(lo) or hi != int(hi):
        raise ValueError(f"{name}: expected integers, got {value!r}")
    return int(lo), int(hi)


def _flatten(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """``x`` of shape (*, C, H, W) as (B, C, H, W), with its original shape."""
    if not torch.is_tensor(x) or x.ndim < 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x: expected a tensor of shape (*, C, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x: expected a floating-point tensor in [0, 1], got dtype {x.dtype}")
    return x.reshape(-1, *x.shape[-3:]), x.shape


def _check_generators(generator: Generators, b: int) -> None:
    """Refuse a sequence of generators, or a row stream, that is not one per image (B of them)."""
    if isinstance(generator, RowStream) and len(generator) != b:
        raise ValueError(f"generator: a RowStream of {len(generator)} rows for {b} images; expected one row per image")
    if isinstance(generator, Sequence) and (len(generator) != b
                                            or not all(isinstance(g, torch.Generator) for g in generator)):
        raise ValueError(f"generator: expected a torch.Generator, None, or one torch.Generator per image ({b}); "
                         f"got a sequence of {len(generator)} ({sorted({type(g).__name__ for g in generator})})")


def _draw(fn, shape: tuple[int, ...], generator: Generators, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``fn(shape)`` (rand, randn) on the generator's device, moved to ``x``'s; image k's block from generator k."""
    if isinstance(generator, Sequence):
        per_image = math.prod(shape) // len(generator)
        return torch.cat([fn(per_image, generator=g, device=g.device, dtype=dtype).to(x.device)
                          for g in generator]).view(shape)
    device = generator.device if generator is not None else x.device
    return fn(shape, generator=generator, device=device, dtype=dtype).to(x.device)


def _rand(n: int, generator: Generators, x: torch.Tensor) -> torch.Tensor:
    """``n`` uniform [0, 1) float32 numbers on ``x``'s device (:func:`_draw`; a row stream: row k's block)."""
    if isinstance(generator, RowStream):
        return generator.rand(n // len(generator), x.device).reshape(-1)
    return _draw(torch.rand, (n,), generator, x, torch.float32)


def _uniform(bounds: tuple[float, float], n: int, generator: Generators, x: torch.Tensor) -> torch.Tensor:
    """``n`` draws from U(lo, hi), shape (n,); always consumes ``n`` numbers so streams stay aligned."""
    lo, hi = bounds
    return lo + (hi - lo) * _rand(n, generator, x)


def _randn_like(x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Standard normal numbers of ``x``'s shape and dtype, on its device (:func:`_draw`; a row stream: row k's)."""
    if isinstance(generator, RowStream):
        return generator.randn(x.shape[-3:], x.device, x.dtype).view(x.shape)
    return _draw(torch.randn, tuple(x.shape), generator, x, x.dtype)


def _low_light_ranges(gamma: Range, gain: Range, shot_noise: Range, read_noise: Range) -> list[tuple[float, float]]:
    """The checked ranges of :func:`synthetic_low_light`, in its order of draws."""
    return [_as_range(gamma, "gamma", low=1e-6), _as_range(gain, "gain", low=1e-6, high=1.0),
            _as_range(shot_noise, "shot_noise", low=0.0), _as_range(read_noise, "read_noise", low=0.0)]


def synthetic_low_light(x: torch.Tensor, *, generator: Generators, gamma: Range = (1.5, 2.5), gain: Range = (0.2, 0.6),
                        shot_noise: Range = (0.0, 0.003), read_noise: Range = (0.0, 0.004),
                        clip: bool = True) -> torch.Tensor:
    """Darken well-exposed images into plausible low-light captures.

    Per image: ``y = gain * x ** gamma`` (MBLLEN's darkening model, Lv et al., BMVC 2018, alpha and beta
    folded into ``gain``), then Poisson-Gaussian sensor noise in its Gaussian approximation (Foi et al.,
    TIP 2008): ``low = y + n``, ``n ~ N(0, shot_noise * y + read_noise ** 2)``. The default ranges match
    the brightness spread of the real under-exposed frames of ``../shared/data/sice_pairs``; the noise is
    milder than Brooks et al.'s (CVPR 2019) raw-domain ranges because it is added to sRGB values.

    Random draws, in order: gamma, gain, shot_noise, read_noise (B each), then the noise field (B, C, H, W).

    Args:
        x: well-exposed images, float32 in [0, 1], shape (*, C, H, W).
        generator: source of every random number (None: torch's global RNG), or one per image.
        gamma: exponent range (> 0); larger darkens mid-tones more than highlights.
        gain: multiplicative exposure range, in (0, 1].
        shot_noise: signal-dependent noise variance per unit intensity, >= 0.
        read_noise: signal-independent noise standard deviation, >= 0.
        clip: clamp the result to [0, 1] (a real capture cannot leave that range).

    Returns:
        Low-light images, same shape, dtype and device as ``x``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> low = synthetic_low_light(torch.full((2, 3, 8, 8), 0.5), generator=g)
        >>> bool(low.mean() < 0.25)
        True
    """
    ranges = _low_light_ranges(gamma, gain, shot_noise, read_noise)
    flat, shape = _flatten(x)
    b = flat.shape[0]
    _check_generators(generator, b)
    g, k, shot, read = (_uniform(r, b, generator, flat).to(flat.dtype).view(b, 1, 1, 1) for r in ranges)
    y = k * flat.clamp(0.0, 1.0).pow(g)
    low = y + (shot * y + read * read).sqrt() * _randn_like(flat, generator)
    return (low.clamp(0.0, 1.0) if clip else low).reshape(shape)


class SyntheticLowLight(nn.Module):
    """Module form of :func:`synthetic_low_light` holding its ranges: ``forward(x, generator=None)``."""

    def __init__(self, gamma: Range = (1.5, 2.5), gain: Range = (0.2, 0.6), shot_noise: Range = (0.0, 0.003),
                 read_noise: Range = (0.0, 0.004), clip: bool = True):
        super().__init__()
        _low_light_ranges(gamma, gain, shot_noise, read_noise)  # a bad config fails at construction
        self.gamma, self.gain, self.shot_noise, self.read_noise, self.clip = gamma, gain, shot_noise, read_noise, clip

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return synthetic_low_light(x, generator=generator, gamma=self.gamma, gain=self.gain,
                                   shot_noise=self.shot_noise, read_noise=self.read_noise, clip=self.clip)

    def extra_repr(self) -> str:
        return (f"gamma={self.gamma}, gain={self.gain}, shot_noise={self.shot_noise}, "
                f"read_noise={self.read_noise}, clip={self.clip}")


def _sigma_like(t: torch.Tensor, name: str, sigma: float | torch.Tensor) -> torch.Tensor:
    """``sigma`` as a tensor of ``t``'s dtype and device, once ``t`` (floating) and ``sigma`` (finite, >= 0) check."""
    if not torch.is_tensor(t) or not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {type(t).__name__}"
                         f"{'' if not torch.is_tensor(t) else ' of dtype ' + str(t.dtype)}")
    sigma_t = torch.as_tensor(sigma, dtype=t.dtype).to(t.device)
    if not bool(torch.isfinite(sigma_t).all()) or bool((sigma_t < 0).any()):
        raise ValueError(f"sigma: expected finite values >= 0 on the 0-255 scale, got {sigma!r}")
    return sigma_t


def add_gaussian_noise(x: torch.Tensor, sigma: float | torch.Tensor, *, generator: Generators,
                       clip: bool = False) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``sigma / 255``.

    The DnCNN / PixelRL protocol: sigma on the 0-255 scale (15, 25, 50 for BSD68), and the noisy
    image is *not* clipped (``clip=False``), so its noise is exactly Gaussian.

    Args:
        x: clean images, float in [0, 1], shape (*, C, H, W).
        sigma: noise level on the 0-255 scale, >= 0: a number, or a tensor broadcastable to
            ``x`` (e.g. shape (B, 1, 1, 1) for one level per image).
        generator: source of the noise (None: torch's global RNG). One draw of shape ``x.shape``,
            or one per image (of its own shape) with one generator per image.
        clip: clamp the noisy image to [0, 1].

    Returns:
        Noisy images, same shape, dtype and device as ``x``.
    """
    sigma_t = _sigma_like(x, "x", sigma)
    if isinstance(generator, (Sequence, RowStream)):
        _check_generators(generator, _flatten(x)[0].shape[0])
    noisy = x + _randn_like(x, generator) * (sigma_t / _PIXEL_SCALE)
    return noisy.clamp(0.0, 1.0) if clip else noisy


class AddGaussianNoise(nn.Module):
    """Module form of :func:`add_gaussian_noise` with a fixed ``sigma`` (0-255 scale)."""

    def __init__(self, sigma: float, clip: bool = False):
        super().__init__()
        if not (math.isfinite(float(sigma)) and float(sigma) >= 0):
            raise ValueError(f"sigma: expected a finite number >= 0 on the 0-255 scale, got {sigma!r}")
        self.sigma, self.clip = float(sigma), clip

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return add_gaussian_noise(x, self.sigma, generator=generator, clip=self.clip)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, clip={self.clip}"


def noise_level_map(gain: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Per-pixel noise level after brightening: ``gain * sigma / 255``, the map FFDNet reads.

    Noise of level ``sigma`` in a dark image brightened by a per-pixel factor ``gain`` (``enhanced /
    input``, :func:`rlenhance.ops.le_gain` multiplied over the curve steps) has about that level (ReLLIE).

    Args:
        gain: per-pixel brightening, float >= 0, shape (*, C, H, W) (or any shape).
        sigma: the dark image's noise level on the 0-255 scale, >= 0: a number, or a tensor
            broadcastable to ``gain`` (e.g. (B, 1, 1, 1), one level per image).

    Returns:
        The noise standard deviation in image units ([0, 1] scale), float, ``gain``'s shape.

    Raises:
        ValueError: ``gain`` is not a floating-point tensor, or ``sigma`` not finite and >= 0.

    Example:
        >>> round(noise_level_map(torch.full((1, 1, 2, 2), 4.0), 10.0)[0, 0, 0, 0].item() * 255, 4)
        40.0
    """
    return gain * (_sigma_like(gain, "gain", sigma) / _PIXEL_SCALE)


def noise_ramp(size: tuple[int, int], low: float | torch.Tensor, high: float | torch.Tensor,
               angle: float | torch.Tensor = 0.0, *, device: torch.device | str | None = None) -> torch.Tensor:
    """A noise level map for :func:`add_gaussian_noise`'s ``sigma``: linear from ``low`` at one edge to
    ``high`` at the opposite one, along the direction ``angle`` (radians; 0: left to right, pi / 2: top to bottom).

    Args:
        size: ``(H, W)`` of the images.
        low, high: the levels at the two ends, 0-255 scale: numbers, or float tensors (B,), one per image.
        angle: the direction: a number, or a float tensor (B,).
        device: where the map is made (default: the tensors' device, else the CPU).

    Returns:
        float32 (B, 1, H, W) levels, 0-255 scale (B = 1 for numbers).

    Example:
        >>> ramp = noise_ramp((2, 5), 10.0, 50.0)
        >>> ramp[0, 0, 0].tolist()
        [10.0, 20.0, 30.0, 40.0, 50.0]
    """
    tensors = [v for v in (low, high, angle) if torch.is_tensor(v)]
    device = device if device is not None else (tensors[0].device if tensors else None)
    low, high, angle = (torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1, 1, 1, 1)
                        for v in (low, high, angle))
    h, w = size
    y = torch.arange(h, dtype=torch.float32, device=device).view(1, 1, h, 1)
    x = torch.arange(w, dtype=torch.float32, device=device).view(1, 1, 1, w)
    along = x * angle.cos() + y * angle.sin()
    lo = along.amin(dim=(-2, -1), keepdim=True)
    span = (along.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-6)
    return low + (high - low) * (along - lo) / span


class AmplifiedNoise(NamedTuple):
    """A batch of :func:`amplified_noise`: float tensors of the input's shape.

    Attributes:
        noisy: the brightened noisy image, in [0, 1] (the denoiser's input).
        target: the same curves applied to the noise-free dark image, in [0, 1] (the denoiser's target).
        noise_map: :func:`noise_level_map` of the brightening, in image units.
    """

    noisy: torch.Tensor
    target: torch.Tensor
    noise_map: torch.Tensor


def amplified_noise(x: torch.Tensor, sigma: float, *, generator: Generators, steps: int = 4,
                    alpha: Range = (0.0, 1.0), grid: int = 4) -> AmplifiedNoise:
    """Noisy low-light images brightened by known, spatially varying LE curves (ReLLIE's setting).

    What a denoiser after the RL policy's curve steps sees: sensor noise amplified by however much each
    pixel was brightened. Per image:

    1. darken: ``dark = synthetic_low_light(x)`` without its noise (gamma and gain only);
    2. sensor noise: ``noisy = clip(dark + N(0, (s / 255)^2))`` with ``s ~ U(0, sigma)`` per image
       (FFDNet's protocol: the map, not the weights, says how strong the noise is);
    3. brighten: ``steps`` LE curve steps (:func:`rlenhance.ops.le_curve`), each with an alpha map drawn
       from ``alpha`` on a ``grid`` x ``grid`` lattice and upsampled bilinearly, applied to ``noisy``
       and to ``dark`` alike;
    4. the map: :func:`noise_level_map` of the product of :func:`rlenhance.ops.le_gain` over the
       steps on the noisy image, as :class:`rlenhance.Enhancer` computes it at test time.

    Random draws, in order: those of :func:`synthetic_low_light` (its noise zero), s (B), the noise field
    (B, C, H, W), then per step the alpha lattice (B, 1, grid, grid), shared by the image's channels.

    Args:
        x: clean images, float in [0, 1], shape (*, C, H, W).
        sigma: the largest dark-level noise standard deviation, on the 0-255 scale, >= 0.
        generator: source of every random number (None: torch's global RNG), or one per image.
        steps: curve steps, >= 1.
        alpha: range of the curve parameters, within [-1, 1].
        grid: lattice points per side of each alpha map (1: one alpha per image), >= 1.

    Returns:
        :class:`AmplifiedNoise` ``(noisy, target, noise_map)``, each of ``x``'s shape, dtype and device.

    Raises:
        ValueError: an argument out of range (named).

    Example:
        >>> batch = amplified_noise(torch.full((2, 1, 16, 16), 0.5), 10.0, generator=torch.Generator().manual_seed(0))
        >>> bool((batch.noise_map >= 0).all()) and batch.noisy.shape == batch.target.shape == (2, 1, 16, 16)
        True
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma: expected a finite number >= 0 on the 0-255 scale, got {sigma!r}")
    for name, value in (("steps", steps), ("grid", grid)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    alpha_r = _as_range(alpha, "alpha", low=-1.0, high=1.0)
    flat, shape = _flatten(x)
    _check_generators(generator, flat.shape[0])
    b, _, height, width = flat.shape
    dark = synthetic_low_light(flat, generator=generator, shot_noise=0.0, read_noise=0.0)
    level = (sigma * _rand(b, generator, flat)).to(flat.dtype).view(b, 1, 1, 1)
    noisy = add_gaussian_noise(dark, level, generator=generator, clip=True)
    target, gain = dark, torch.ones_like(flat)
    for _ in range(steps):
        lattice = _uniform(alpha_r, b * grid * grid, generator, flat).to(flat.dtype).view(b, 1, grid, grid)
        a = F.interpolate(lattice, size=(height, width), mode="bilinear", align_corners=False)
        gain = gain * le_gain(noisy, a)
        noisy, target = le_curve(noisy, a), le_curve(target, a)
    return AmplifiedNoise(noisy.clamp(0.0, 1.0).reshape(shape), target.clamp(0.0, 1.0).reshape(shape),
                          noise_level_map(gain, level).reshape(shape))
