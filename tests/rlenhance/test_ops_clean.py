"""The clean stage of an enhanced image (rlenhance.ops.clean) and its native kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlenhance.errors import ImageError
from rlenhance.ops import clean, native
from rlenhance.ops.clean import KNEE, KNEE_DROP, KNEE_TARGET, clean_enhanced, clean_tensor, halo_rows, knee_start

needs_native = pytest.mark.skipif(not native.available(), reason="native kernels unavailable")
PATHS = [False, pytest.param(True, marks=needs_native)]


def _pair(seed: int = 0, shape: tuple[int, int] = (61, 37)) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy input and a brightening of it by a gain that varies over the image (some pixels
    darkened, some left alone, some pushed to white)."""
    rng = np.random.default_rng(seed)
    x = np.clip(0.15 + 0.05 * rng.standard_normal((*shape, 3)), 0, 1).astype(np.float32)
    x[:5] = rng.uniform(0.8, 1.0, (5, shape[1], 3))  # a bright band
    gain = np.linspace(0.5, 6.0, shape[0], dtype=np.float32)[:, None, None]
    y = np.clip(x * gain, 0, 1).astype(np.float32)
    y[-4:] = x[-4:]  # rows the curves left alone
    return x, y


@pytest.mark.parametrize("use_native", PATHS)
@pytest.mark.parametrize("strength", [0.5, 1.0, 2.0])
def test_band_by_band_equals_the_whole_image(use_native, strength):
    x, y = _pair()
    whole = clean_enhanced(x, y, strength, rows=10_000, use_native=use_native)
    for rows in (1, 3, halo_rows(strength), 25):
        np.testing.assert_array_equal(clean_enhanced(x, y, strength, rows=rows, use_native=use_native), whole)
    levels = clean_enhanced(x, y, strength, rows=4, out=np.empty(x.shape, np.uint8), use_native=use_native)
    np.testing.assert_array_equal(levels, np.rint(whole * 255))


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
@pytest.mark.parametrize("tuning", [{}, {"GAIN_LOW": 1.5, "GAIN_HIGH": 2.5}])
def test_the_native_kernel_agrees_with_torch(dtype, tuning, monkeypatch):
    for name, value in tuning.items():  # the luma's ramp over most of the pixels
        monkeypatch.setattr(clean, name, value)
    x, y = _pair(1, (70, 90))
    if dtype != np.float32:
        top = np.iinfo(dtype).max
        x = np.rint(x * top).astype(dtype)
    for strength in (0.5, 1.0, 2.0):
        fast = clean_enhanced(x, y, strength, use_native=True)
        slow = clean_enhanced(x, y, strength, use_native=False)
        assert np.abs(fast - slow).max() <= 1e-6
        for target in (0.3, 0.8):  # the knee placed lower and higher
            fast = clean_enhanced(x, y, strength, target=target, use_native=True)
            assert np.abs(fast - clean_enhanced(x, y, strength, target=target, use_native=False)).max() <= 1e-6
        levels = [clean_enhanced(x, y, strength, out=np.empty(x.shape, dtype), use_native=flag)
                  for flag in (True, False)]
        assert np.abs(levels[0].astype(np.int64) - levels[1]).max() <= 1  # (a tie may round either way)


@pytest.mark.parametrize("shape", [(70, 90), (9, 4), (6, 1)])
def test_the_tensor_form_agrees_with_the_banded_stage_at_any_size(shape):
    """clean_tensor (the ONNX graph's: convolutions with gathered reflect-101 borders) on images smaller
    than the blurs' kernels too."""
    x, y = _pair(3, shape)
    as_batch = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    for strength in (0.0, 0.5, 2.0):
        for target in (0.3, 0.8):
            got = clean_tensor(as_batch(x), as_batch(y), strength, knee=knee_start(target))
            expected = clean_enhanced(x, y, strength, target=target)
            assert np.abs(got[0].permute(1, 2, 0).numpy() - expected).max() <= 1e-6


@pytest.mark.parametrize("use_native", PATHS)
def test_pixels_not_brightened_are_returned_bit_for_bit(use_native):
    x, y = _pair(2)
    np.testing.assert_array_equal(clean_enhanced(x, x, use_native=use_native), x)  # a photo that needs no light
    samples = np.rint(x * 255).astype(np.uint8)
    unit = samples.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(clean_enhanced(samples, unit, out=np.empty(x.shape, np.uint8),
                                                 use_native=use_native), samples)
    out = clean_enhanced(x, y, use_native=use_native)
    luma = np.asarray([0.299, 0.587, 0.114], np.float32)
    alone = (y @ luma) <= (x @ luma)  # darkened or left alone
    assert alone.sum() > 100 and (~alone).sum() > 100
    np.testing.assert_array_equal(out[alone], y[alone])
    np.testing.assert_array_equal(clean_enhanced(x, y, 0.0, use_native=use_native), y)  # strength 0: off


@pytest.mark.parametrize("use_native", PATHS)
def test_colour_noise_of_brightened_pixels_is_smoothed(use_native):
    rng = np.random.default_rng(3)
    x = np.full((64, 64, 3), 0.05, np.float32)
    x += 0.01 * rng.standard_normal(x.shape).astype(np.float32)  # colour speckle
    y = np.clip(x * 8, 0, 1).astype(np.float32)  # brightened 8x: w = 1 everywhere
    out = clean_enhanced(x, y, use_native=use_native)

    def chroma_spread(image: np.ndarray) -> float:
        return float((image - image.mean(axis=2, keepdims=True))[8:-8, 8:-8].std())
    assert chroma_spread(out) < 0.3 * chroma_spread(y)
    assert abs(float(out.mean()) - float(y.mean())) < 0.01  # the brightening is kept
    assert chroma_spread(clean_enhanced(x, y, 2.0, use_native=use_native)) < chroma_spread(out)


@pytest.mark.parametrize("use_native", PATHS)
def test_the_knee_keeps_brightened_pixels_below_white_and_clipped_inputs_clipped(use_native):
    x = np.zeros((8, 120, 3), np.float32)  # three flat areas, looked at away from their edges (the blurs)
    x[:, :80] = 0.45  # brightened to white by the curves (from column 40)
    x[:, 80:] = 1.0  # white in the input already
    y = np.ones_like(x)
    y[:, :40] = 0.6  # below the knee: untouched by it
    out = clean_enhanced(x, y, use_native=use_native)
    assert np.abs(out[:, :25] - 0.6).max() < 1e-6
    np.testing.assert_allclose(out[:, 55:65], 1 - KNEE_DROP * (1 - KNEE), atol=1e-6)
    assert (np.rint(out[:, 40:80] * 255) < 255).all()
    np.testing.assert_array_equal(out[:, 80:], 1.0)  # the input's white stays (not brightened: untouched)


@pytest.mark.parametrize("use_native", PATHS)
def test_a_brighter_exposure_target_moves_the_knee_up(use_native):
    assert knee_start() == KNEE
    assert knee_start(KNEE_TARGET) == pytest.approx(KNEE)
    assert knee_start(0.3) < KNEE < knee_start(0.6) < knee_start(0.8) < 1
    x = np.full((8, 60, 3), 0.3, np.float32)
    y = np.full_like(x, 0.9)  # above the knee at the tuning target, below it at a target of 0.8
    y[:, 30:] = 1.0
    at_tuning = clean_enhanced(x, y, target=KNEE_TARGET, use_native=use_native)
    bright = clean_enhanced(x, y, target=0.8, use_native=use_native)
    np.testing.assert_array_equal(clean_enhanced(x, y, use_native=use_native), at_tuning)
    assert (at_tuning[:, 5:25] < 0.9 - 1e-4).all()
    np.testing.assert_allclose(bright[:, 5:25], 0.9, atol=1e-6)  # flat areas: the blurs change nothing
    np.testing.assert_allclose(bright[:, 40:55], 1 - KNEE_DROP * (1 - knee_start(0.8)), atol=1e-6)
    assert bright.mean() > at_tuning.mean()
    for bad in (0.0, 1.0, math.nan, True, "0.5"):
        with pytest.raises(ValueError, match="target: expected the exposure target"):
            clean_enhanced(x, y, target=bad)


def test_bad_arguments_are_refused():
    x, y = _pair()
    for bad in (-0.1, 2.5, math.nan, True, "1"):
        with pytest.raises(ValueError, match="strength: expected the denoising strength"):
            clean_enhanced(x, y, bad)
    with pytest.raises(ImageError, match="clean_enhanced"):
        clean_enhanced(x, y.astype(np.float64))
    with pytest.raises(ImageError, match="clean_enhanced"):
        clean_enhanced(x[..., :2], y[..., :2])
    with pytest.raises(ValueError, match="rows"):
        clean_enhanced(x, y, rows=0)


@pytest.mark.parametrize("use_native", PATHS)
def test_a_gray_image_stays_gray(use_native):
    x, y = _pair(4)
    x, y = (np.repeat(a[..., 1:2], 3, axis=2) for a in (x, y))
    out = clean_enhanced(x, y, use_native=use_native)
    assert np.abs(out - y).max() > 1e-3  # cleaned
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 2], out[..., 1])


@pytest.mark.parametrize("use_native", PATHS)
def test_the_luma_of_pixels_brightened_more_is_smoothed_more(use_native):
    rng = np.random.default_rng(5)
    x = np.clip(0.02 + 0.004 * rng.standard_normal((64, 128, 1)), 0.005, 1).repeat(3, axis=2).astype(np.float32)
    gain = np.where(np.arange(128) < 64, clean.GAIN_LOW, clean.GAIN_HIGH).astype(np.float32)[None, :, None]
    y = np.clip(x * gain, 0, 1).astype(np.float32)
    out = clean_enhanced(x, y, use_native=use_native)

    def kept(columns: slice) -> float:  # the luma noise left, relative to the curves'
        return float(out[8:-8, columns, 1].std() / y[8:-8, columns, 1].std())
    assert kept(slice(80, 120)) < 0.9 * kept(slice(8, 48)) < 0.9  # (the seam at column 64 left out)


def test_scratch_planes_are_reused_across_bands_and_grown_when_too_small():
    scratch: dict = {}
    first = clean.scratch_plane(scratch, "luma", (10, 8))
    smaller = clean.scratch_plane(scratch, "luma", (6, 8))
    assert smaller.shape == (6, 8) and smaller.flags.c_contiguous and np.shares_memory(first, smaller)
    larger = clean.scratch_plane(scratch, "luma", (12, 8))
    assert larger.shape == (12, 8) and not np.shares_memory(first, larger)
    assert not np.shares_memory(clean.scratch_plane(scratch, "chroma", (12, 8)), larger)
    assert clean.scratch_plane(None, "luma", (3, 4)).shape == (3, 4)
