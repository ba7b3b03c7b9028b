"""Tests for rlenhance.metrics.matlab_resize: MATLAB imresize's sizes, kernel and rounding.

Its exactness against MATLAB is checked through NIQE's reference values
(tests/rlenhance/test_metrics_no_reference.py), whose second scale is ``imresize(0.5)``.
"""

import numpy as np
import pytest

from rlenhance.errors import ImageError
from rlenhance.metrics.matlab_resize import imresize


def test_sizes_follow_matlab_rules():
    image = np.zeros((5, 7))
    assert imresize(image, scale=0.5).shape == (3, 4)  # ceil(scale * size)
    assert imresize(image, scale=2).shape == (10, 14)
    assert imresize(np.zeros((5, 7, 3)), output_shape=(2, 9)).shape == (2, 9, 3)


def test_constant_and_scale_one():
    assert np.allclose(imresize(np.full((9, 11), 3.25), scale=0.37), 3.25, atol=1e-12)
    flat = np.full((9, 11), 77, np.uint8)
    assert np.array_equal(imresize(flat, scale=0.37), np.full((4, 5), 77, np.uint8))
    rng = np.random.default_rng(0)
    image = rng.random((6, 8, 3))
    np.testing.assert_array_equal(imresize(image, scale=1.0), image)


def test_linear_ramp_away_from_the_borders():
    # the (antialiased) cubic kernel is symmetric and sums to one, so it reproduces a ramp exactly
    ramp = np.tile(np.arange(40, dtype=np.float64), (3, 1))
    half = imresize(ramp, output_shape=(3, 20))
    # output column i (0-based) sits at input position 2 i + 0.5; the kernel reaches 4 pixels either side
    np.testing.assert_allclose(half[1, 3:-3], 2 * np.arange(3, 17) + 0.5, atol=1e-12)
    double = imresize(ramp, output_shape=(3, 80))
    # upscaling: output column i sits at input position i / 2 - 0.25
    np.testing.assert_allclose(double[1, 4:-4], np.arange(4, 76) / 2 - 0.25, atol=1e-12)
    # at the border the image is mirrored with its edge pixel repeated: the first output (position 0.5)
    # reads pixels 2, 1, 0 | 0, 1, 2, 3, 4 with weights 0.5 cubic(d / 2), d = 3.5, 2.5, ... -3.5, over their sum 2
    taps = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375])
    assert half[1, 0] == pytest.approx(taps @ [2, 1, 0, 0, 1, 2, 3, 4] / taps.sum(), abs=1e-12)
    assert half[1, 0] == 0.44921875


def test_uint8_is_rounded_after_each_axis():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    out = imresize(image, scale=0.5)
    assert out.dtype == np.uint8
    rows = np.floor(imresize(image.astype(np.float64), output_shape=(8, 24)) + 0.5).clip(0, 255)
    both = np.floor(imresize(rows, output_shape=(8, 12)) + 0.5).clip(0, 255)
    np.testing.assert_array_equal(out, both)


def test_bad_arguments_raise():
    image = np.zeros((4, 4))
    with pytest.raises(ValueError, match="exactly one of scale and output_shape"):
        imresize(image)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(image, scale=0.5, output_shape=(2, 2))
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        imresize(image, scale=0)
    with pytest.raises(ValueError, match="output_shape must be two ints >= 1"):
        imresize(image, output_shape=(0, 2))
    with pytest.raises(ImageError, match="unsupported dtype int32"):
        imresize(image.astype(np.int32), scale=0.5)
    with pytest.raises(ImageError, match="non-empty"):
        imresize(np.zeros((0, 4)), scale=0.5)
