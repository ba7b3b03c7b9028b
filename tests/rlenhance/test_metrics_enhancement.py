"""dark_colour_noise and clipped_fraction (rlenhance.metrics.enhancement)."""

from __future__ import annotations

import numpy as np
import pytest

from rlenhance.errors import ImageError
from rlenhance.metrics import clipped_fraction, dark_colour_noise


def _scene(seed: int = 0) -> np.ndarray:
    """A dark left half and a bright right half, both flat."""
    image = np.full((64, 96, 3), 0.6, np.float32)
    image[:, :48] = 0.05
    return image


def test_dark_colour_noise_measures_chroma_speckle_in_the_dark_flat_areas():
    clean = _scene()
    assert dark_colour_noise(clean, clean) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    speckle = clean.copy()
    speckle[:, :48] += 0.02 * rng.standard_normal((64, 48, 3)).astype(np.float32)  # colour noise in the dark half
    bright_noise = clean.copy()
    bright_noise[:, 48:] += 0.02 * rng.standard_normal((64, 48, 3)).astype(np.float32)  # in the bright half only
    noisy = dark_colour_noise(clean, np.clip(speckle, 0, 1))
    assert noisy > 1.0  # a few levels of chroma spread on the 0-255 scale
    assert dark_colour_noise(clean, np.clip(bright_noise, 0, 1)) < 0.1 * noisy  # not where the input is bright
    gray = clean.copy()
    gray[:, :48] += 0.02 * rng.standard_normal((64, 48, 1)).astype(np.float32)  # luma noise, no colour
    assert dark_colour_noise(clean, np.clip(gray, 0, 1)) < 0.1 * noisy
    levels = np.rint(np.clip(speckle, 0, 1) * 255).astype(np.uint8)  # 8-bit samples read on the same scale
    assert dark_colour_noise(clean, levels) == pytest.approx(noisy, rel=0.05)


def test_clipped_fraction_counts_pixels_with_a_channel_at_white():
    image = np.zeros((10, 10, 3), np.float32)
    image[:2, :, 0] = 1.0  # 20 pixels with red at white
    image[5, :5] = 254.6 / 255  # rounds to 255: 5 more
    image[6, :5] = 254.4 / 255  # rounds to 254: not clipped
    assert clipped_fraction(image) == pytest.approx(0.25)
    assert clipped_fraction(np.rint(image * 255).astype(np.uint8)) == pytest.approx(0.25)


def test_bad_images_are_refused():
    with pytest.raises(ImageError, match="same shape"):
        dark_colour_noise(_scene(), _scene()[:32])
    with pytest.raises(ImageError, match="image"):
        clipped_fraction(np.zeros((4, 4), np.float32))
