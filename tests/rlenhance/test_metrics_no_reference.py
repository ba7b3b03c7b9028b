"""Tests for rlenhance.metrics.no_reference: NIQE against the MATLAB release's values, LOE known values."""

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data as skdata

from rlenhance.errors import ImageError
from rlenhance.metrics import loe, niqe
from rlenhance.metrics.matlab_resize import imresize

#: reference.json holds 4 decimals; a faithful implementation lands within 0.01, this one within 1e-4.
NIQE_TOL = 1e-3


def _photo(name: str) -> np.ndarray:
    """skimage's sample photo as uint8 RGB (the gray camera replicated to 3 channels)."""
    image = getattr(skdata, name)()
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def test_niqe_matches_matlab_release_reference_values(shared_dir):
    reference = json.loads((shared_dir / "data" / "niqe" / "reference.json").read_text())["values"]
    suffix = "_dark_x0.25"
    errors = {}
    for key, expected in reference.items():
        image = _photo(key.removesuffix(suffix))
        if key.endswith(suffix):
            image = np.round(image * 0.25).astype(np.uint8)
        errors[key] = niqe(image) - expected
    assert len(errors) == 10
    assert max(abs(e) for e in errors.values()) < NIQE_TOL, errors


def test_niqe_float_gray_and_crop_conventions():
    image = skdata.chelsea()  # 300 x 451: three rows of four blocks, 12 x 67 pixels cropped away
    value = niqe(image)
    assert niqe(image.astype(np.float32) / 255) == value  # floats are scored as their 8-bit samples
    assert niqe(image.astype(np.float64) / 255) == value
    assert niqe(image.astype(np.uint16) * 257) == value
    assert niqe(image[:288, :384]) == value  # only whole 96 x 96 blocks from the top left count
    changed = image.copy()
    changed[288:, :] = 0
    changed[:, 384:] = 255
    assert niqe(changed) == value

    gray = skdata.camera()
    assert niqe(gray) == niqe(gray[..., None]) == niqe(np.repeat(gray[..., None], 3, axis=2))


def test_niqe_rises_with_blur_and_noise():
    image = skdata.astronaut().astype(np.float64) / 255
    sharp = niqe(image)
    blurred = np.clip(gaussian_filter(image, sigma=(2, 2, 0)), 0, 1)
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 0.1, image.shape), 0, 1)
    assert niqe(blurred) > sharp + 1
    assert niqe(noisy) > sharp + 1


def test_niqe_bad_input_raises_named_errors():
    image = skdata.astronaut()
    with pytest.raises(ImageError, match="95x512 pixels is smaller than one 96x96 block"):
        niqe(image[:95])
    with pytest.raises(ValueError, match="smaller than one 96x96 block"):  # ImageError is a ValueError
        niqe(image[:, :50, 0])
    assert np.isfinite(niqe(image[:96, :96]))  # one block is enough
    with pytest.raises(ImageError, match="flat"):
        niqe(np.full((128, 128, 3), 0.5, np.float32))
    with pytest.raises(ImageError, match="expected shape"):
        niqe(np.zeros((128, 128, 4), np.uint8))
    with pytest.raises(ImageError, match="numpy array"):
        niqe(image.tolist())
    with pytest.raises(ImageError, match="values span"):
        niqe(image.astype(np.float32))  # 0-255 values in a float array
    with pytest.raises(ImageError, match="unsupported dtype"):
        niqe(image.astype(np.int32))


def _loe_pairwise(before: np.ndarray, after: np.ndarray) -> float:
    """LOE by the script's double loop over the grid (before / after: lightness grids)."""
    a = before.ravel().astype(np.int64)
    b = after.ravel().astype(np.int64)
    return float(np.mean([np.sum((a[i] >= a) ^ (b[i] >= b)) for i in range(a.size)]))


def test_loe_identity_and_order_keeping_maps_are_zero():
    image = skdata.coffee()
    assert loe(image, image) == 0.0
    assert loe(image, image, side=None) == 0.0
    assert loe(image.astype(np.float32) / 255, image) == 0.0
    # a strictly increasing map of the levels, applied to every channel, keeps every order
    low = (image // 2).astype(np.int64)
    stretched = (low + low // 2).astype(np.uint8)
    assert loe(low.astype(np.uint8), stretched, side=None) == 0.0


def test_loe_counts_flipped_orders():
    # two gray levels, half the pixels each; inverting them flips the order against the other half
    image = np.zeros((10, 20), np.uint8)
    image[:, 10:] = 200
    assert loe(image, 255 - image, side=None) == 100.0
    assert loe(image, 255 - image, side=10) == pytest.approx(100.0, abs=15)  # the grid blurs the edge

    photo = skdata.coffee().astype(np.float32) / 255
    curve = loe(photo, np.sqrt(photo))
    clipped = loe(photo, np.clip(photo * 2.5, 0, 1))
    inverted = loe(photo, 1 - photo)
    assert 0 < curve < clipped < inverted


def test_loe_matches_pairwise_count():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    enhanced = np.clip(image.astype(np.int64) + rng.integers(-40, 40, image.shape), 0, 255).astype(np.uint8)
    assert loe(image, enhanced, side=None) == _loe_pairwise(image.max(axis=2), enhanced.max(axis=2))
    # the default grid: shorter side 50 (here 30 -> 50, 40 -> round(66.67) = 67), MATLAB's imresize
    grid = [imresize(x.max(axis=2), output_shape=(50, 67)) for x in (image, enhanced)]
    assert loe(image, enhanced) == _loe_pairwise(*grid)
    # a grid of the image's own size is the image (scale 1 copies)
    assert loe(image, enhanced, side=30) == loe(image, enhanced, side=None)


def test_loe_bad_input_raises_named_errors():
    image = np.zeros((60, 80, 3), np.uint8)
    with pytest.raises(ImageError, match="same height and width"):
        loe(image, image[:, :79])
    with pytest.raises(ValueError, match="side must be an int >= 1 or None"):
        loe(image, image, side=0)
    with pytest.raises(ValueError, match="side must be an int >= 1 or None"):
        loe(image, image, side=True)
    with pytest.raises(ImageError, match="loe: enhanced"):
        loe(image, np.full(image.shape, 2.0, np.float32))


# --------------------------------------------------------------------------- clipped_fraction, dark_colour_noise


def test_clipped_fraction_counts_pixels_with_a_saturated_channel():
    from rlenhance.metrics import clipped_fraction

    image = np.zeros((4, 5, 3), np.uint8)
    image[0, 0, 1] = 255  # one channel at white is a clipped pixel
    image[1, :, :] = 250
    assert clipped_fraction(image) == pytest.approx(1 / 20)
    assert clipped_fraction(image, level=250 / 255) == pytest.approx(6 / 20)
    assert clipped_fraction(image.astype(np.float32) / 255) == clipped_fraction(image)  # floats as 8-bit samples
    assert clipped_fraction(image[..., 1]) == pytest.approx(1 / 20)  # gray
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="level"):
            clipped_fraction(image, level=bad)


def _dark_scene(seed: int = 0) -> np.ndarray:
    """A 64 x 96 float RGB scene: a dark flat left half and a bright textured right half."""
    rng = np.random.default_rng(seed)
    image = np.full((64, 96, 3), 0.05)
    image[:, 48:] = 0.6 + 0.3 * rng.random((64, 48, 1))
    return image


def test_dark_colour_noise_measures_chroma_noise_in_dark_flat_areas():
    from rlenhance.metrics import dark_colour_noise

    scene = _dark_scene()
    rng = np.random.default_rng(1)
    brightened = np.clip(scene * 4, 0, 1)
    assert dark_colour_noise(scene, brightened) == 0.0  # a clean brightening adds no colour noise
    chroma_speckle = rng.normal(0, 0.02, scene.shape)  # independent per channel: colour noise
    noisy = np.clip(brightened + chroma_speckle * (scene < 0.1), 0, 1)
    gray_speckle = np.clip(brightened + chroma_speckle[..., :1] * (scene < 0.1), 0, 1)  # luma noise only
    score = dark_colour_noise(scene, noisy)
    assert score > 1.0  # about 0.02 * 255 * (chroma gain) per channel
    assert dark_colour_noise(scene, gray_speckle) < score / 10  # luma noise is not colour noise
    louder = np.clip(brightened + 2 * chroma_speckle * (scene < 0.1), 0, 1)
    assert dark_colour_noise(scene, louder) == pytest.approx(2 * score, rel=0.1)
    # the noise only counts in the input's dark pixels: the same speckle on the bright half is ignored
    bright_speckle = np.clip(brightened + chroma_speckle * (scene > 0.1), 0, 1)
    assert dark_colour_noise(scene, bright_speckle) < score / 10


def test_dark_colour_noise_rejects_gray_and_mismatched_images():
    from rlenhance.metrics import dark_colour_noise

    scene = _dark_scene()
    with pytest.raises(ImageError, match="RGB"):
        dark_colour_noise(scene[..., 0], scene[..., 0])
    with pytest.raises(ImageError, match="same shape"):
        dark_colour_noise(scene, scene[:32])
