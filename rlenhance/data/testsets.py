"""Fixed evaluation sets: every method, run and seed scored on them sees the same degraded images.

The random degradation of an image (noise, hole, uneven light) comes from a CPU ``torch.Generator`` seeded by
:func:`image_seed` of a set-level seed and the image's name, so it depends on neither the order, the subset,
the device nor the run. Sets: :func:`noisy_test_set` (the PixelRL / DnCNN protocol, or real pairs),
:func:`occluded_test_set`, :func:`lowlight_test_set` (one batch).

Example:
    >>> from rlenhance.data import BuiltinImages, noisy_test_set
    >>> images = noisy_test_set(BuiltinImages(names=("camera",), gray=True), 25.0, seed=0)
    >>> images[0].name, tuple(images[0].noisy.shape)
    ('camera', (1, 512, 512))
    >>> bool((images[0].noisy == noisy_test_set(BuiltinImages(names=("camera",), gray=True), 25.0)[0].noisy).all())
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from rlenhance.data.degrade import add_gaussian_noise, noise_ramp, synthetic_low_light
from rlenhance.data.illumination import uneven_low_light
from rlenhance.data.occlusion import random_occlusion
from rlenhance.data.transforms import fit_longer_side

__all__ = ["LOWLIGHT_INPUTS", "LowLightTestSet", "NoisyImage", "OccludedImage", "image_seed", "lowlight_test_set",
           "noisy_test_set", "occluded_test_set", "synthetic_noise_level", "uneven_capture"]

#: Bytes of the SHA-256 digest that make a per-image seed (:func:`image_seed`).
_SEED_BYTES = 8


def image_seed(seed: int, name: str) -> int:
    """A seed (< 2**63) for one evaluation image's random degradation from a set-level seed and the image's name:
    SHA-256, so it is stable across runs, machines and the order of the images.

    Example:
        >>> image_seed(0, "camera") == image_seed(0, "camera") != image_seed(1, "camera")
        True
    """
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:_SEED_BYTES], "little") >> 1  # torch seeds are < 2**63


def _items(dataset: Any, limit: int) -> Iterator[dict[str, Any]]:
    """The first ``limit`` items of ``dataset`` (0: all)."""
    return (dataset[index] for index in range(len(dataset) if not limit else min(limit, len(dataset))))


# --- denoising ---------------------------------------------------------------------------------------
class NoisyImage(NamedTuple):
    """One evaluation image: its name, clean and noisy versions, float32 (C, H, W) (noisy not clipped)."""

    name: str
    clean: torch.Tensor
    noisy: torch.Tensor


def synthetic_noise_level(size: tuple[int, int], sigma: float, sigma_to: float | None = None) -> float | torch.Tensor:
    """The level of :func:`noisy_test_set`'s synthetic noise in an image of ``size`` (H, W), 0-255 scale: ``sigma``,
    or with ``sigma_to`` the ramp (:func:`rlenhance.data.noise_ramp`, float32 (1, 1, H, W)) from ``sigma`` at the
    left edge to ``sigma_to`` at the right one."""
    return sigma if sigma_to is None else noise_ramp(size, sigma, sigma_to)


def noisy_test_set(dataset: Any, sigma: float, *, seed: int = 0, device: str | torch.device = "cpu",
                   limit: int = 0, sigma_to: float | None = None) -> list[NoisyImage]:
    """The evaluation images of a data set with fixed Gaussian noise, or its real noisy images.

    An item with its own ``"noisy"`` image (real noise: ``NoisyPairs``) is taken as it is, with its ``"clean"``
    image as the reference; ``sigma`` and ``seed`` do not apply to it. Any other item's noise is seeded by
    :func:`image_seed` of ``seed`` and its name (see the module docstring).

    Args:
        dataset: items with ``"name"`` and either ``"clean"`` + ``"noisy"`` (``NoisyPairs``) or a clean ``"high"``
            or ``"low"`` image, float32 (C, H, W) in [0, 1] (``BuiltinImages``, ``UnpairedImages``, ``PairedImages``).
        sigma: noise standard deviation on the 0-255 scale (>= 0) of the Gaussian noise.
        seed: the noise seed.
        sigma_to: a level linear from ``sigma`` at the left edge to ``sigma_to`` at the right one
            (:func:`synthetic_noise_level`); None: ``sigma`` everywhere.
        device: where the returned tensors live.
        limit: keep the first ``limit`` images (0: all).

    Returns:
        list of :class:`NoisyImage`, in the data set's order.
    """
    out = []
    for item in _items(dataset, limit):
        if "noisy" in item:  # real noise
            clean, noisy = item["clean"], item["noisy"]
        else:
            clean = item["high"] if "high" in item else item["low"]
            generator = torch.Generator().manual_seed(image_seed(seed, item["name"]))
            noisy = add_gaussian_noise(clean[None], synthetic_noise_level(tuple(clean.shape[-2:]), sigma, sigma_to),
                                       generator=generator)[0]
        out.append(NoisyImage(item["name"], clean.to(device), noisy.to(device)))
    return out


# --- completion --------------------------------------------------------------------------------------
class OccludedImage(NamedTuple):
    """One evaluation image: name, occluded and original float32 (3, H, W), mask (1, H, W) (1 = hole)."""

    name: str
    occluded: torch.Tensor
    original: torch.Tensor
    mask: torch.Tensor


def occluded_test_set(dataset: Any, *, occlusion: str = "box", seed: int = 0, device: str | torch.device = "cpu",
                      limit: int = 0, max_side: int = 0) -> list[OccludedImage]:
    """Evaluation images: the pairs of an ``OccludedPairs`` set, or clean photos (``"high"``) with a synthetic
    hole seeded by :func:`image_seed` of ``seed`` and the image name (see the module docstring).

    Args:
        dataset: an ``OccludedPairs`` set or items ``{"high", "name"}``, float32 (3, H, W) in [0, 1].
        occlusion: hole shape for clean photos ("box", "stroke" or "mixed").
        seed: the hole seed.
        device: where the returned tensors live.
        limit: keep the first ``limit`` images (0: all).
        max_side: clean photos with a longer side above this are area-downscaled to it first (0: never).

    Returns:
        list of :class:`OccludedImage`, in the data set's order.
    """
    out = []
    for item in _items(dataset, limit):
        if "occluded" in item:
            occluded, original, mask = item["occluded"], item["original"], (item["mask"] > 0).float()
        else:
            original = fit_longer_side(item["high"], max_side) if max_side else item["high"]
            generator = torch.Generator().manual_seed(image_seed(seed, item["name"]))
            occluded, mask = (t[0] for t in random_occlusion(original[None], generator=generator, kind=occlusion))
        out.append(OccludedImage(item["name"], occluded.to(device), original.to(device), mask.to(device)))
    return out


# --- low light ---------------------------------------------------------------------------------------
#: The dark inputs of a low-light evaluation set (``light``): ``"data"``, the data's own (the low frames of pairs;
#: clean photos darkened uniformly), or ``"uneven"``, every reference relit by :func:`uneven_capture`.
LOWLIGHT_INPUTS = ("data", "uneven")


def uneven_capture(reference: torch.Tensor, name: str, *, seed: int = 0) -> torch.Tensor:
    """The dark capture of an evaluation image under non-uniform light: its ``reference`` (float32 (C, H, W) in
    [0, 1]) relit by :func:`~rlenhance.data.uneven_low_light` seeded by :func:`image_seed` of ``seed`` and
    ``name`` (see the module docstring). Same shape and device as ``reference``.

    Example:
        >>> photo = torch.full((3, 16, 24), 0.6)
        >>> bool(torch.equal(uneven_capture(photo, "a.png"), uneven_capture(photo, "a.png")))
        True
    """
    generator = torch.Generator().manual_seed(image_seed(seed, name))
    return uneven_low_light(reference[None].cpu(), generator=generator)[0].to(reference.device)


class LowLightTestSet(NamedTuple):
    """Low-light evaluation images as one batch: names, ``low`` float32 (N, 3, h, w) in [0, 1] and ``high`` (same
    shape) or None without references."""

    names: list[str]
    low: torch.Tensor
    high: torch.Tensor | None


def lowlight_test_set(dataset: Any, size: int, *, seed: int = 0, device: str | torch.device = "cpu",
                      light: str = "data") -> LowLightTestSet:
    """Every image of a data set, area-downscaled so its shorter side is ``size`` and centre-cropped to ``size`` x
    ``size``, stacked into one batch.

    Images smaller than ``size`` are not upscaled; where their shapes then differ, all are centre-cropped to the
    smallest height and width so they stack. Clean photos (items with ``"high"`` alone) get synthetic lows
    (:func:`~rlenhance.data.synthetic_low_light`) from a generator on ``device`` seeded by ``seed``. With
    ``light="uneven"`` every low is its fitted reference relit by :func:`uneven_capture` of ``seed`` and its name.

    Args:
        dataset: items with ``"name"`` and ``"low"`` and / or ``"high"``, float32 (3, H, W) in [0, 1].
        size: side of the square the images are fitted to.
        seed: seed of the synthetic lows.
        device: where the returned tensors live.
        light: the dark inputs, one of :data:`LOWLIGHT_INPUTS`.

    Raises:
        ValueError: an unknown ``light``, or ``"uneven"`` for an item without a reference.
    """
    if light not in LOWLIGHT_INPUTS:
        raise ValueError(f"light: expected one of {LOWLIGHT_INPUTS}, got {light!r}")
    items = [dataset[i] for i in range(len(dataset))]
    if light == "uneven" and any("high" not in item for item in items):
        lacking = next(item["name"] for item in items if "high" not in item)
        raise ValueError(f"light 'uneven' relights references, but {lacking} has none (give pairs, or well-exposed "
                         "photos in a high/ folder)")
    lows, highs = ([_fit(item[key], size) for item in items if key in item] for key in ("low", "high"))
    h, w = (min(image.shape[-2 + i] for image in lows + highs) for i in range(2))
    lows, highs = ([_centre_crop(image, h, w) for image in images] for images in (lows, highs))
    high = torch.stack(highs).to(device) if highs else None
    if light == "uneven":
        low = torch.stack([uneven_capture(image, item["name"], seed=seed) for image, item in zip(highs, items)])
        low = low.to(device)
    elif lows:
        low = torch.stack(lows).to(device)
    else:
        low = synthetic_low_light(high, generator=torch.Generator(device=device).manual_seed(seed))
    return LowLightTestSet([item["name"] for item in items], low, high)


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downscale so the shorter side is ``size``, then centre-crop to size x size."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    if scale < 1:
        image = F.interpolate(image[None], size=(max(size, round(h * scale)), max(size, round(w * scale))),
                              mode="area")[0]
    return _centre_crop(image, size, size)


def _centre_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centre ``height`` x ``width`` of ``image`` (C, H, W) (all of a side shorter than asked)."""
    h, w = image.shape[-2:]
    top, left = (h - min(h, height)) // 2, (w - min(w, width)) // 2
    return image[:, top:top + height, left:left + width]
