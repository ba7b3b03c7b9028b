"""Non-uniform illumination: well-exposed photos relit by smooth, spatially varying light fields.

A photo lit unevenly (a lamp in a dark room, a backlit subject) is dark in some places and well exposed
in others, which no global curve corrects. :func:`uneven_low_light` makes such captures from well-exposed
photos (which are their references), in the camera's linear light:

1. the photo is linearised by a gamma camera response, ``lin = x ** g`` (g per image);
2. multiplied by an illumination field ``L`` (:func:`illumination_field`: smooth, in
   ``[ambient, 1]``) and an exposure ``k``: ``y = k L lin`` (``k > 1`` clips the brightest light);
3. given Poisson-Gaussian sensor noise, Gaussian ``N(0, shot y + read^2)`` (Foi et al., TIP 2008), clipped to [0, 1];
4. returned through the response, ``low = y ** (1 / g)``.

Every random number comes from ``generator`` as in :mod:`rlenhance.data.degrade` (one per image or a
row stream: image k's result does not depend on the rest of the batch).

The fields (:data:`LIGHTS`), on coordinates where the image's longer side is 1:

==============  ==========================================================================
``spotlight``   one elliptical Gaussian pool of light anywhere in the frame
``lamps``       two to four Gaussian pools of different strengths (their soft union)
``gradient``    light falling off along a random direction (a window or a lamp off-frame)
``vignette``    a radial fall-off around a point near the centre
``window``      a bright soft-edged rectangle (a window) with light spilling into a dark room
``backlit``     a bright background with a dark subject in front of it (a soft ellipse)
==============  ==========================================================================

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> low = uneven_low_light(torch.full((2, 3, 32, 48), 0.5), generator=g)
    >>> low.shape, bool(low.amin() >= 0), bool(low.amax() <= 1)
    (torch.Size([2, 3, 32, 48]), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rlenhance.data.degrade import Generators, Range, _as_range, _check_generators, _flatten, _randn_like
from rlenhance.data.rows import RowStream

__all__ = ["LIGHTS", "illumination_field", "uneven_low_light"]

#: The kinds of illumination field (module docstring).
LIGHTS = ("spotlight", "lamps", "gradient", "vignette", "window", "backlit")


def _grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates x, y, (H, W) each, in units of the longer side (x in [0, W / side])."""
    side = float(max(height, width))
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / side
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / side
    return torch.meshgrid(ys, xs, indexing="ij")[::-1]


def _blob(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, sx: float, sy: float, angle: float) -> torch.Tensor:
    """A rotated elliptical Gaussian of peak 1 centred at (cx, cy), standard deviations (sx, sy)."""
    c, s = math.cos(angle), math.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0.0, 1.0)
    return t * t * (3 - 2 * t)


def _field(kind: str, x: torch.Tensor, y: torch.Tensor, u: list[float]) -> torch.Tensor:
    """The shape of one field, in [0, 1] with its peak at 1, from the uniform numbers ``u`` (16 of them)."""
    w, h = float(x.max() + x.min()), float(y.max() + y.min())  # the frame's extent in grid units
    if kind == "spotlight":
        f = _blob(x, y, u[0] * w, u[1] * h, 0.08 + 0.25 * u[2], 0.08 + 0.25 * u[3], math.pi * u[4])
    elif kind == "lamps":
        n = 2 + int(u[0] * 3)
        dark = torch.ones_like(x)
        for i in range(n):  # the soft union: a point is dark only where every lamp leaves it dark
            a = u[1 + 3 * i: 4 + 3 * i]
            strength = 0.4 + 0.6 * u[13 - i]
            dark = dark * (1 - strength * _blob(x, y, a[0] * w, a[1] * h, 0.08 + 0.2 * a[2], 0.08 + 0.2 * a[2], 0))
        f = 1 - dark
    elif kind == "gradient":
        angle = 2 * math.pi * u[0]
        t = x * math.cos(angle) + y * math.sin(angle)
        f = ((t - t.min()) / (t.max() - t.min()).clamp(min=1e-6)) ** (0.6 + 1.6 * u[1])
    elif kind == "vignette":
        cx, cy = w * (0.35 + 0.3 * u[0]), h * (0.35 + 0.3 * u[1])
        r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (0.15 + 0.35 * u[2]) ** 2
        f = 1 / (1 + r2) ** 2
    elif kind == "window":
        left, top = u[0] * w * 0.7, u[1] * h * 0.5
        right, bottom = left + w * (0.15 + 0.35 * u[2]), top + h * (0.3 + 0.6 * u[3])
        edge = 0.01 + 0.05 * u[4]
        inside = _smoothstep((x - left) / edge + 0.5) * _smoothstep((right - x) / edge + 0.5) \
            * _smoothstep((y - top) / edge + 0.5) * _smoothstep((bottom - y) / edge + 0.5)
        gap = ((left - x).clamp(min=0) + (x - right).clamp(min=0)) ** 2 \
            + ((top - y).clamp(min=0) + (y - bottom).clamp(min=0)) ** 2
        spill = (0.3 + 0.5 * u[5]) * torch.exp(-gap.sqrt() / (0.1 + 0.3 * u[6]))
        f = torch.maximum(inside, spill)
    elif kind == "backlit":
        subject = _blob(x, y, w * (0.3 + 0.4 * u[0]), h * (0.45 + 0.4 * u[1]), 0.1 + 0.15 * u[2],
                        0.15 + 0.25 * u[3], 0.6 * (u[4] - 0.5))
        f = 1 - _smoothstep(subject * 2.5 - 0.5)
    else:
        raise ValueError(f"lights: unknown kind {kind!r}; expected some of {LIGHTS}")
    return f / f.amax().clamp(min=1e-6)


def _image_numbers(n: int, generator: Generators, batch: int) -> list[list[float]]:
    """``n`` uniform [0, 1) python floats per image, image 0's first: from each image's own generator
    (on its device), from a row stream (row k's for image k), or from one generator in turn."""
    if isinstance(generator, RowStream):
        return generator.random((batch, n)).tolist()
    gens = generator if isinstance(generator, Sequence) else [generator] * batch
    return [torch.rand(n, generator=g, device=g.device if g is not None else "cpu", dtype=torch.float64).tolist()
            for g in gens]


def illumination_field(batch: int, height: int, width: int, *, generator: Generators,
                       lights: Sequence[str] = LIGHTS, ambient: Range = (0.02, 0.15),
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Smooth illumination fields, one per image: float32 (B, 1, H, W) in ``[ambient, 1]``, peak 1.

    Per image, in order: the kind (uniform over ``lights``), the ambient level (uniform in
    ``ambient``: the light of the darkest places, relative to the brightest), then 16 numbers that
    place and shape the field (:data:`LIGHTS`). ``L = ambient + (1 - ambient) f``.

    Raises:
        ValueError: an unknown kind in ``lights``, none given, or an ``ambient`` outside (0, 1].
    """
    unknown = sorted(set(lights) - set(LIGHTS))
    if unknown or not lights:
        raise ValueError(f"lights: expected some of {LIGHTS}, got {list(lights)!r}")
    ambient_r = _as_range(ambient, "ambient", low=1e-6, high=1.0)
    _check_generators(generator, batch)
    x, y = _grid(height, width, torch.device(device))
    fields = []
    for u in _image_numbers(18, generator, batch):
        kind = lights[min(int(u[0] * len(lights)), len(lights) - 1)]
        floor = ambient_r[0] + (ambient_r[1] - ambient_r[0]) * u[1]
        fields.append(floor + (1 - floor) * _field(kind, x, y, u[2:]))
    return torch.stack(fields)[:, None]


def uneven_low_light(x: torch.Tensor, *, generator: Generators, lights: Sequence[str] = LIGHTS,
                     ambient: Range = (0.02, 0.15), exposure: Range = (0.05, 0.5), response: Range = (2.0, 2.4),
                     shot_noise: Range = (0.0, 0.0002), read_noise: Range = (0.0, 0.0005)) -> torch.Tensor:
    """Relight well-exposed images with non-uniform light (module docstring).

    Random draws, in order: the field of each image (:func:`illumination_field`), then per image the
    exposure, the response's gamma, shot and read noise, then the noise field (B, C, H, W).

    Args:
        x: well-exposed images, float32 in [0, 1], shape (*, C, H, W).
        generator: source of every random number (None: torch's global RNG), or one per image.
        lights: the kinds of field drawn from (:data:`LIGHTS`).
        ambient: the darkest places' light relative to the brightest, in (0, 1].
        exposure: ``k``, the brightest light's exposure relative to the photo's own (> 1 clips it).
        response: gamma of the camera response (``lin = x ** g``).
        shot_noise: signal-dependent noise variance per unit of linear intensity, >= 0.
        read_noise: signal-independent noise standard deviation in linear light, >= 0.

    Returns:
        The dark captures, same shape, dtype and device as ``x``, in [0, 1].
    """
    ranges = (_as_range(exposure, "exposure", low=1e-6), _as_range(response, "response", low=1e-6),
              _as_range(shot_noise, "shot_noise", low=0.0), _as_range(read_noise, "read_noise", low=0.0))
    flat, shape = _flatten(x)
    b, _, height, width = flat.shape
    _check_generators(generator, b)
    light = illumination_field(b, height, width, generator=generator, lights=lights, ambient=ambient,
                               device=flat.device).to(flat.dtype)
    params = torch.tensor([[lo + (hi - lo) * v for (lo, hi), v in zip(ranges, u)]
                           for u in _image_numbers(4, generator, b)], dtype=flat.dtype, device=flat.device)
    k, gamma, shot, read = (params[:, j].view(b, 1, 1, 1) for j in range(4))
    y = k * light * flat.clamp(0.0, 1.0).pow(gamma)
    y = (y + (shot * y + read * read).sqrt() * _randn_like(flat, generator)).clamp(0.0, 1.0)
    return y.pow(1.0 / gamma).reshape(shape)
